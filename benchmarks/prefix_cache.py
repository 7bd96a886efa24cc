"""Prefix-cached vs plain yes/no scoring with the offline SmolLM2 on real prompts: the same users scored both ways.
Prints the speed ratio and the largest score difference (goal: >= 4x, |diff| <= 1e-4).
Run: python benchmarks/prefix_cache.py [--dataset beauty] [--users 5] [--negatives 99]"""
import argparse
import time

import numpy as np
import torch

from bench.data.candidates import draw
from bench.data.prepare import load_dataset
from bench.data.view import FitData
from bench.lm.models import load_causal_lm
from bench.lm.prompts import PromptStyle, get_template, split_prompt
from bench.lm.yesno import YesNoScorer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--users", type=int, default=5)
    ap.add_argument("--negatives", type=int, default=99)
    ap.add_argument("--batch", type=int, default=25)
    args = ap.parse_args()
    torch.manual_seed(0)
    ds = load_dataset(args.dataset)
    data = FitData.from_dataset(ds)
    cands = draw(ds, "test", args.negatives, "uniform", 0)
    lm = load_causal_lm("smollm2")
    scorer = YesNoScorer(lm.model.eval(), lm.tokenizer, batch_size=args.batch)
    template, style = get_template("seen-0"), PromptStyle()
    jobs = []
    for u in cands.users[:args.users]:
        titles = [ds.item_text[i] for i in data.history(int(u), "test")]
        pairs = [split_prompt(template, style, titles, ds.item_text[int(c)], ds.category) for c in cands.items[u]]
        jobs.append((pairs[0][0], [s for _, s in pairs]))
    t = time.perf_counter()
    plain = np.concatenate([scorer.score_plain(p, s) for p, s in jobs])
    t_plain = time.perf_counter() - t
    t = time.perf_counter()
    cached = np.concatenate([scorer.score_cached(p, s) for p, s in jobs])
    t_cached = time.perf_counter() - t
    n = len(plain)
    prefix_tokens = np.mean([len(scorer.encode(p, [])[0]) for p, _ in jobs])
    suffix_tokens = np.mean([len(x) for p, s in jobs for x in scorer.encode(p, s)[1]])
    print(f"{args.users} users x {args.negatives + 1} candidates = {n} prompts; mean prefix {prefix_tokens:.0f} tokens, "
          f"mean suffix {suffix_tokens:.0f} tokens; batch {args.batch}")
    print(f"plain: {t_plain:.1f} s ({n / t_plain:.1f} prompts/s)   prefix-cached: {t_cached:.1f} s "
          f"({n / t_cached:.1f} prompts/s)   speed-up {t_plain / t_cached:.2f}x")
    print(f"largest |score difference|: {np.abs(plain - cached).max():.2e}")


if __name__ == "__main__":
    main()
