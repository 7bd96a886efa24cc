"""Prefix-shared packing vs plain yes/no scoring with the offline SmolLM2 on real prompts, under the one truncation
rule: the same users scored both ways. Prints the speed ratio and the largest score difference (goal: >= 4x,
|diff| <= 1e-4). Plain = one full sequence (prefix + suffix) per candidate; packed = the prefix once per row with
every candidate's suffix behind it (bench/lm/packing.py), rows of several users in one forward pass.
Run: python benchmarks/prefix_cache.py [--dataset beauty] [--users 5] [--negatives 99] [--max-length 256]"""
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
from bench.lm.yesno import YesNoScorer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--users", type=int, default=5)
    ap.add_argument("--negatives", type=int, default=99)
    ap.add_argument("--batch", type=int, default=25, help="plain: candidates per forward pass")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=4096, help="packed: tokens per forward pass")
    args = ap.parse_args()
    torch.manual_seed(0)
    ds = load_dataset(args.dataset)
    data = FitData.from_dataset(ds)
    cands = draw(ds, "test", args.negatives, "uniform", 0)
    lm = load_causal_lm("smollm2")
    model = lm.model.eval()
    builder = PromptBuilder(get_template("seen-0"), PromptStyle(), ds.item_text, ds.category,
                            token_encoder(lm.tokenizer), args.max_length)
    engine = YesNoEngine(model, lm.tokenizer, builder, " yes", " no", max_tokens=args.max_tokens, score_rows=32)
    plain_scorer = YesNoScorer(model, lm.tokenizer, batch_size=args.batch)
    users, items = cands.users[:args.users], cands.items[:args.users]
    groups = [builder.group(data.history(int(u), "test")[-builder.style.history_len:], c) for u, c in zip(users, items)]
    t = time.perf_counter()
    with torch.no_grad():
        plain = np.concatenate([plain_scorer.margins_plain([g.prefix.ids + s.ids for s in g.suffixes[i:i + args.batch]])
                                .numpy() for g in groups for i in range(0, len(g.suffixes), args.batch)])
    t_plain = time.perf_counter() - t
    t = time.perf_counter()
    packed = engine.score(data, users, items, "test").ravel()
    t_packed = time.perf_counter() - t
    n = len(plain)
    print(f"{args.users} users x {args.negatives + 1} candidates = {n} prompts; mean prefix "
          f"{np.mean([len(g.prefix) for g in groups]):.0f} tokens, mean suffix "
          f"{np.mean([len(s) for g in groups for s in g.suffixes]):.0f} tokens; max_length {args.max_length}, "
          f"{sum(g.history_used < g.history_shown for g in groups)} of {len(groups)} prompts lost history items")
    print(f"plain: {t_plain:.1f} s ({n / t_plain:.1f} prompts/s)   packed: {t_packed:.1f} s "
          f"({n / t_packed:.1f} prompts/s)   speed-up {t_plain / t_packed:.2f}x")
    print(f"largest |score difference|: {np.abs(plain - packed).max():.2e}")


if __name__ == "__main__":
    main()
