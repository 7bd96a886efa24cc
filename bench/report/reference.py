"""A fresh cell beside its published reference cell: the same relative folder (dataset, protocol, method, params
hash, seed) under `results/`. Same seed and same code should give identical metrics; otherwise the two runs are
compared per user (paired: the same users and candidates) and called in agreement when the bootstrap 95% CI of the
mean per-user NDCG@10 difference contains 0, i.e. the difference is within the noise of the user sample.
Between the two: every user's rank and GAUC the same, and only the pooled AUC off by float rounding. Pooled AUC ranks
all users' scores together, so a last-bit change in one score (another torch build) can move it where no per-user
value moves; that run is called identical per user, with the AUC difference printed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.evaluate import METRIC_KEYS
from bench.io import read_json
from bench import results
from bench.results import COMPACT_FILE, is_published, per_user_values, read_compact

COMPARED = "ndcg@10"
IDENTICAL_TOL = 1e-12
POOLED = "auc"           # the one metric not a mean of per-user values
ROUNDING_TOL = 1e-6      # pooled AUC moved by float rounding alone; any changed rank moves a per-user value instead


def reference_of(folder: Path, out_root: Path) -> Path | None:
    """The published cell matching a fresh one, or None when the fresh one is itself published."""
    if is_published(out_root):
        return None
    try:
        rel = Path(folder).resolve().relative_to(Path(out_root).resolve())
    except ValueError:
        return None
    return results.published_root() / rel


def compare_with_reference(folder: Path, out_root: Path) -> str | None:
    """One line: identical / agrees within noise / differs, or why there is nothing to compare with."""
    from bench.report.significance import paired_test
    ref = reference_of(folder, out_root)
    if ref is None:
        return None
    if not (ref / "result.json").is_file():
        return "no reference cell in results/ for this cell (different params, protocol or seed)"
    fresh, old = read_json(Path(folder) / "result.json"), read_json(ref / "result.json")
    diffs = {k: abs(fresh["metrics"][k] - old["metrics"][k]) for k in METRIC_KEYS
             if fresh["metrics"].get(k) is not None and old["metrics"].get(k) is not None}
    note = " (the reference was budget-stopped: not reproducible)" if old.get("training", {}).get("budget_stopped") \
        else ""
    if all(d <= IDENTICAL_TOL for d in diffs.values()):
        return f"identical to the reference {ref.relative_to(results.published_root().parent)}{note}"
    if not (ref / COMPACT_FILE).is_file():
        return (f"differs from the reference by up to {max(diffs.values()):.4f} (|diff| over metrics); the reference "
                f"has no {COMPACT_FILE}, so no paired test{note}")
    if _same_per_user(ref, Path(folder)) and all(d <= IDENTICAL_TOL for k, d in diffs.items() if k != POOLED) \
            and diffs.get(POOLED, 0.0) <= ROUNDING_TOL:
        return (f"identical per user to the reference {ref.relative_to(results.published_root().parent)}: every "
                f"user's rank and GAUC match; only the pooled AUC differs, by {diffs[POOLED]:.1e} (float rounding: it "
                f"ranks all users' scores together){note}")
    try:
        ua, a = per_user_values(ref, COMPARED)
        ub, b = per_user_values(folder, COMPARED)
    except BenchError as exc:
        return f"cannot compare with the reference: {exc}"
    users, ia, ib = np.intersect1d(ua, ub, return_indices=True)
    if len(users) < 2:
        return "the reference scored other users; nothing to pair"
    r = paired_test(a[ia], b[ib], n_boot=2000, seed=0)
    agree = r["ci_low"] <= 0.0 <= r["ci_high"]
    verdict = "agrees within seed noise" if agree else "DIFFERS beyond seed noise"
    return (f"{verdict} with the reference: {COMPARED} {r['mean_b']:.4f} vs {r['mean_a']:.4f}, diff {r['diff']:+.4f}, "
            f"paired bootstrap 95% CI [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] over {r['n']} users, Wilcoxon p "
            f"{r['wilcoxon_p']:.3g}{note}")


def _same_per_user(ref: Path, fresh: Path) -> bool:
    """The same users with the same rank, candidate count and GAUC, value for value (compact files)."""
    if not (fresh / COMPACT_FILE).is_file():
        return False
    try:
        a, b = read_compact(ref / COMPACT_FILE), read_compact(fresh / COMPACT_FILE)
    except BenchError:
        return False
    return all(np.array_equal(a[k], b[k]) for k in ("users", "rank", "n_neg", "gauc"))
