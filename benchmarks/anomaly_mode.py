"""What RecBole's import-time autograd anomaly mode cost (bench/compat.py now switches it back off): train the same
batches of a sequential RecBole model from the same seed with anomaly mode on (as it was) and off (as the harness
runs now), print the time ratio and whether the trained weights are bit-identical.
Run: python benchmarks/anomaly_mode.py [--method sasrec] [--dataset ml-100k] [--batches 25] [--threads 1]"""
import argparse
import itertools
import time

import torch

from bench.data.prepare import load_dataset
from bench.method import get_method
from fitdata import fit_data


class FirstBatches:
    """The first n batches of a RecBole loader (its other attributes pass through)."""
    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)

    def __len__(self):
        return min(self.n, len(self.loader))

    def __getattr__(self, name):
        return getattr(self.loader, name)


def train(data, method, batches, anomaly):
    m = get_method(method)(epochs=1, train_batch_size=256)
    with m._recbole_view(data):  # what fit() sets up, then only the first batches of one epoch
        trainer, loader = m._build(data)
        torch.autograd.set_detect_anomaly(anomaly)
        try:
            t = time.perf_counter()
            trainer._train_epoch(FirstBatches(loader, batches), 0)
            return time.perf_counter() - t, {k: v.clone() for k, v in m.model_.state_dict().items()}
        finally:
            torch.autograd.set_detect_anomaly(False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="sasrec")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--batches", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.dataset)
    data = fit_data(ds)
    t_on, w_on = train(data, a.method, a.batches, True)
    t_off, w_off = train(data, a.method, a.batches, False)
    same = all(torch.equal(w_on[k], w_off[k]) for k in w_on)
    print(f"{a.method} on {a.dataset}, {a.batches} batches of 256, {a.threads} thread(s): anomaly mode on {t_on:.1f} s, "
          f"off {t_off:.1f} s, ratio {t_on / t_off:.2f}x; weights bit-identical: {same}")


if __name__ == "__main__":
    main()
