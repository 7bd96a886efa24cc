"""Evaluator speed: 100k users x 101 candidates, vectorised vs the per-user loop reference. Prints the ratio.
Run: python benchmarks/evaluator_speed.py"""
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from bench.evaluate import evaluate_sampled


def loop_reference(scores, labels):
    ranks = [(s[~l] >= s[l][0]).sum() for s, l in zip(scores, labels)]
    return np.mean([1.0 / (r + 1) for r in ranks]), roc_auc_score(labels.ravel(), scores.ravel())


def main(users=100_000, cands=101, loop_users=5_000):
    rng = np.random.default_rng(0)
    scores = rng.random((users, cands), dtype=np.float32)
    labels = np.zeros((users, cands), bool)
    labels[np.arange(users), rng.integers(0, cands, users)] = True
    evaluate_sampled(scores[:1000], labels[:1000])  # warm-up
    t = time.perf_counter()
    ev = evaluate_sampled(scores, labels)
    fast = time.perf_counter() - t
    t = time.perf_counter()
    mrr, _ = loop_reference(scores[:loop_users], labels[:loop_users])
    slow = (time.perf_counter() - t) * users / loop_users
    print(f"vectorised evaluator: {users} users x {cands} candidates in {fast:.3f} s")
    print(f"per-user loop (extrapolated from {loop_users} users): {slow:.1f} s; ratio {slow / fast:.0f}x")
    print(f"MRR {ev.metrics['mrr']:.5f}, AUC {ev.metrics['auc']:.5f}")


if __name__ == "__main__":
    main()
