"""Scoring throughput of the shared yes/no LM scorer: one user per forward pass vs rows of many users batched
together (what a GPU needs: it is launch-bound at small batches). Same prompts, same scores; prints prompts/s of
each and the ratio. Run: python benchmarks/scoring_throughput.py [--dataset beauty] [--users 32] [--negatives 19]
[--model smollm2] [--device auto] [--max-tokens 16384]

`--method ganprompt` measures GANPrompt's own scorer (MiniLM -> projection -> the LM, quick profile's prompts)
instead: `joint` (the encoder reads each candidate's whole prompt, so nothing is shared) vs `split` (the encoder
reads the history prefix once, the LM shares it across candidates), prompts/s of each and the ratio."""
import argparse
import time

import numpy as np
import torch

from bench.data.candidates import draw
from bench.data.prepare import load_dataset
from bench.data.view import FitData
from bench.lm.engine import YesNoEngine
from bench.lm.models import load_causal_lm
from bench.lm.prompts import PromptBuilder, PromptStyle, get_template, token_encoder
from bench.method import resolve_device


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--negatives", type=int, default=19)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-tokens", type=int, default=16384, help="tokens per forward pass when batching users")
    ap.add_argument("--history", type=int, default=5)
    ap.add_argument("--title-words", type=int, default=8)
    ap.add_argument("--method", default="lm", choices=("lm", "ganprompt"))
    args = ap.parse_args()
    if args.method == "ganprompt":
        return ganprompt(args)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    ds = load_dataset(args.dataset)
    data = FitData.from_dataset(ds)
    cands = draw(ds, "test", args.negatives, "uniform", 0)
    lm = load_causal_lm(args.model, device=device)
    builder = PromptBuilder(get_template("seen-0"), PromptStyle(history_len=args.history, title_words=args.title_words),
                            ds.item_text, ds.category, token_encoder(lm.tokenizer), 256)
    users, items = cands.users[:args.users], cands.items[:args.users]
    out = {}
    for label, chunk, max_tokens in (("one user per pass", 1, 1), ("users batched", 4096, args.max_tokens)):
        engine = YesNoEngine(lm.model.eval(), lm.tokenizer, builder, " yes", " no", max_tokens=max_tokens,
                             score_rows=args.negatives + 1, device=device)
        engine.score(data, users[:2], items[:2], "test", chunk_users=chunk)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        s = engine.score(data, users, items, "test", chunk_users=chunk)
        if device == "cuda":
            torch.cuda.synchronize()
        out[label] = (time.perf_counter() - t, s)
    n = items.size
    (t1, s1), (t2, s2) = out.values()
    print(f"{args.model} on {device}: {args.users} users x {args.negatives + 1} candidates = {n} prompts")
    print(f"one user per pass: {n / t1:.1f} prompts/s   users batched (max {args.max_tokens} tokens/pass): "
          f"{n / t2:.1f} prompts/s   ratio {t1 / t2:.2f}x   largest |score difference| {np.abs(s1 - s2).max():.1e}")


def ganprompt(args):
    """GANPrompt's scorer under its two encoder contexts (weights do not change the cost; no training needed)."""
    from bench.method import get_method
    torch.manual_seed(0)
    ds = load_dataset(args.dataset)
    data = FitData.from_dataset(ds)
    cands = draw(ds, "test", args.negatives, "uniform", 0)
    users, items = cands.users[:args.users], cands.items[:args.users]
    out = {}
    for context in ("joint", "split"):
        m = get_method("ganprompt").from_profile("quick", encoder_context=context, device=args.device)
        m._setup(data)
        m.engine_.model.eval()
        m.engine_.score(data, users[:2], items[:2], "test")  # warm-up
        t = time.perf_counter()
        m.engine_.score(data, users, items, "test")
        out[context] = time.perf_counter() - t
    n = items.size
    print(f"ganprompt (quick profile) on {m.device_}: {args.users} users x {args.negatives + 1} candidates = {n} prompts")
    print(f"joint: {n / out['joint']:.1f} prompts/s   split: {n / out['split']:.1f} prompts/s   "
          f"ratio {out['joint'] / out['split']:.2f}x")


if __name__ == "__main__":
    main()
