"""What one load for every metric saves when a leaderboard's † marks are computed: per metric, `compare` with the
per-user file cache cleared before each call (how the marks were computed before: every cell parsed and every
label's seeds pooled once per metric) against `compare_metrics`, one load and one pooling for all metrics. Prints
both times, the ratio, and whether the reports are byte-identical.
Run: python benchmarks/report_rebuild.py [--dataset sports-5core] [--protocol full] [--out results]"""
import argparse
import time

from bench.report.leaderboard import build
from bench.report.significance import compare, compare_metrics
from bench.results import _read_compact_cached, _users_are_unique


def clear():
    _read_compact_cached.cache_clear()
    _users_are_unique.cache_clear()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="sports-5core")
    ap.add_argument("--protocol", default="full")
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    metrics = [m for m in build(a.out, a.dataset, a.protocol).metrics() if m != "auc"]
    clear()
    t = time.perf_counter()
    per_metric = {}
    for m in metrics:
        clear()
        per_metric[m] = compare(a.out, a.dataset, a.protocol, m, n_boot=200)
    t_per_metric = time.perf_counter() - t
    clear()
    t = time.perf_counter()
    together = compare_metrics(a.out, a.dataset, a.protocol, metrics, n_boot=200)
    t_together = time.perf_counter() - t
    same = all(per_metric[m].to_csv() == together[m].to_csv() for m in metrics)
    print(f"{a.dataset}/{a.protocol}, {len(metrics)} metrics: per metric, uncached {t_per_metric:.1f} s; "
          f"one load {t_together:.1f} s; ratio {t_per_metric / t_together:.2f}x; reports identical: {same}")


if __name__ == "__main__":
    main()
