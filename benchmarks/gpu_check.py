"""A short GPU check (a few minutes): train and score one LLM method on the GPU, print throughput next to the CPU.
Run on a machine with a GPU:  python benchmarks/gpu_check.py [--method tallrec] [--dataset beauty]
On a CPU-only machine it runs the CPU part only and says so."""
import argparse
import time

import numpy as np
import torch

from bench.data.candidates import draw
from bench.data.prepare import load_dataset
from bench.method import get_method
from fitdata import fit_data


def one(method: str, ds, device: str, samples: int, users: int, negatives: int) -> dict:
    data = fit_data(ds, negatives)
    test = draw(ds, "test", negatives, "uniform", 0)
    m = get_method(method).from_profile("quick", device=device, train_groups=samples, valid_users=0,
                                        max_minutes=None, batch_groups=16 if device == "cuda" else 2)
    t = time.perf_counter()
    m.fit(data)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    scores = m.score(test.users[:users], test.items[:users])
    score_s = time.perf_counter() - t
    n = scores.size
    rows = samples * (1 + m.params.negatives)
    return {"device": device, "fit_s": fit_s, "train_rows_per_s": rows / max(fit_s, 1e-9),
            "score_s": score_s, "prompts_per_s": n / score_s, "finite": bool(np.isfinite(scores).all())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="tallrec")
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--negatives", type=int, default=19)
    ap.add_argument("--cpu-users", type=int, default=3)
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    rows = []
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}, bf16 autocast")
        rows.append(one(args.method, ds, "cuda", args.samples, args.users, args.negatives))
    else:
        print("no GPU here: CPU figures only")
    rows.append(one(args.method, ds, "cpu", min(args.samples, 16), args.cpu_users, args.negatives))
    for r in rows:
        print(f"{r['device']:>4}: fit {r['fit_s']:.1f} s ({r['train_rows_per_s']:.2f} training prompts/s), "
              f"score {r['score_s']:.1f} s ({r['prompts_per_s']:.2f} prompts/s), finite scores: {r['finite']}")
    if len(rows) == 2:
        print(f"GPU/CPU throughput: training {rows[0]['train_rows_per_s'] / rows[1]['train_rows_per_s']:.1f}x, "
              f"scoring {rows[0]['prompts_per_s'] / rows[1]['prompts_per_s']:.1f}x")


if __name__ == "__main__":
    main()
