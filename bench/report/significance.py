"""Paired significance tests between methods, from stored per-user results only (never retrains).

Two methods are compared on the same users: each user's metric value (from the committed compact per-user file,
per_user.csv.gz, so every test recomputes on a fresh clone; users are matched by token), averaged over the seeds
a method has, is one paired observation. Reported per comparison: the paired t-test, the Wilcoxon signed-rank
test, a seeded bootstrap 95% CI of the mean difference, Cohen's d for paired samples, and the chosen test's
p-value after Holm's step-down correction across every comparison of the report.

Pooled AUC has no per-user value, so GAUC (the per-user AUC) stands in for it.
"""
from __future__ import annotations

import hashlib
import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from bench.errors import BenchError
from bench.evaluate import METRIC_KEYS
from bench.io import write_text
from bench.report.labels import KIND_ORDER, header
from bench.results import cells_of, label_name, method_labels, per_user_table

STAND_IN = {"auc": "gauc"}          # requested metric -> per-user array that is tested
REFERENCE_KINDS = ("baseline", "text", "llm")
TESTS = ("wilcoxon", "ttest")
WILCOXON_ZERO_METHOD = "wilcox"     # users with a zero difference are dropped (the classic signed-rank test)
ZERO_TOL = 1e-12                    # float noise below this is not a difference
MAX_BOOT_CELLS = 4_000_000          # resample in chunks so memory stays ~32 MB even for 100k users


def _bootstrap_ci(diff: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile CI of the mean difference; resampling users (the pairs), so it is a paired bootstrap."""
    rng = np.random.default_rng(seed)
    n = len(diff)
    chunk = max(1, MAX_BOOT_CELLS // n)
    means = np.concatenate([diff[rng.integers(0, n, size=(min(chunk, n_boot - start), n))].mean(axis=1)
                            for start in range(0, n_boot, chunk)])
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_test(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Compare per-user values b against a on the same users (difference = b - a)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise BenchError(f"paired test needs two 1-d arrays of the same length, got shapes {a.shape} and {b.shape}")
    if len(a) < 2:
        raise BenchError(f"paired test needs at least 2 users, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise BenchError("paired test got a NaN or infinite per-user value")
    diff = b - a
    diff[np.abs(diff) < ZERO_TOL] = 0.0
    mean_a, mean_b, mean_diff = float(a.mean()), float(b.mean()), float(diff.mean())
    sd = float(diff.std(ddof=1))
    if sd == 0.0:
        # every user moved by the same amount: scipy would return NaN; the limit is t = 0 (no change) or ±inf
        t_stat = 0.0 if mean_diff == 0 else float(np.sign(mean_diff) * np.inf)
        t_p = 1.0 if mean_diff == 0 else 0.0
    else:
        t_stat, t_p = (float(x) for x in stats.ttest_rel(b, a))
    if not diff.any():
        w_stat, w_p = 0.0, 1.0   # scipy cannot rank an all-zero sample; nothing differs, so p = 1
    else:
        with warnings.catch_warnings():  # "too few users for the normal approximation" is expected on tiny inputs
            warnings.simplefilter("ignore")
            res = stats.wilcoxon(diff, zero_method=WILCOXON_ZERO_METHOD)
        w_stat, w_p = float(res.statistic), float(res.pvalue)
    ci_low, ci_high = _bootstrap_ci(diff, n_boot, seed)
    return {"n": int(len(diff)), "mean_a": mean_a, "mean_b": mean_b, "diff": mean_diff,
            "improvement_pct": 100.0 * mean_diff / mean_a if mean_a else float("nan"),
            "t_stat": t_stat, "t_p": t_p, "wilcoxon_stat": w_stat, "wilcoxon_p": w_p,
            "ci_low": ci_low, "ci_high": ci_high, "effect_size": mean_diff / sd if sd else 0.0}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: the k-th smallest times (m - k + 1), made monotone, capped at 1."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    out = np.empty_like(p)
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out.tolist()


def _tested_metric(metric: str) -> str:
    if metric not in METRIC_KEYS:
        raise BenchError(f"unknown metric {metric!r}; choose one of {', '.join(METRIC_KEYS)}")
    return STAND_IN.get(metric, metric)


def _load(root, dataset: str, protocol_tag: str, metrics) -> tuple[dict, dict]:
    """Per-user values by label and seed, {label: {seed: (users, {metric: values})}}, and each label's kind.
    `metrics` are the tested ones (gauc for auc); each cell's file is read once for all of them."""
    keys = [metrics] if isinstance(metrics, str) else list(metrics)
    cells = [(folder, res["method"]["name"], res["method"]["params_hash"], res["method"].get("kind", "baseline"),
              int(res["seed"])) for folder, res in cells_of(root, dataset, protocol_tag)]
    per_user: dict[str, dict[int, tuple[np.ndarray, dict[str, np.ndarray]]]] = {}
    kinds: dict[str, str] = {}
    labels = method_labels((name, h) for _, name, h, _, _ in cells)
    for (folder, _, _, kind, seed), label in zip(cells, labels):
        users, table = per_user_table(folder, keys)
        per_user.setdefault(label, {})[seed] = (users, {k: table[k] for k in keys})
        kinds[label] = kind
    return per_user, kinds


def load_per_user(root, dataset: str, protocol_tag: str, metric: str) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """{label: {seed: (users, values)}}; metric "auc" loads the per-user GAUC."""
    key = _tested_metric(metric)
    per_user = _load(root, dataset, protocol_tag, key)[0]
    return {lab: {s: (u, v[key]) for s, (u, v) in seeds.items()} for lab, seeds in per_user.items()}


def _index_of(users: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in `users` of the tokens `wanted` (all present)."""
    order = np.argsort(users)
    return order[np.searchsorted(users[order], wanted)]


def _pool_index(label: str, seed_users: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The users every seed scored (sorted tokens) and, per seed, where they sit in its file."""
    if all(u is seed_users[0] or np.array_equal(u, seed_users[0]) for u in seed_users):
        common = np.unique(seed_users[0])   # what the intersections below give, without sorting each pair
    else:
        common = None
        for users in seed_users:
            common = users if common is None else np.intersect1d(common, users)
        common = np.unique(common)
    if not len(common):
        raise BenchError(f"the seeds of {label!r} scored disjoint user sets; cannot pool them per user")
    return common, [_index_of(u, common) for u in seed_users]


def pool_seeds(label: str, seeds: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Each user's value averaged over the method's seeds, on the users every seed scored (sorted ids)."""
    common, index = _pool_index(label, [u for u, _ in seeds.values()])
    return common, np.mean([v[i] for (_, v), i in zip(seeds.values(), index)], axis=0)


def _pair_index(a_label: str, a_users: np.ndarray, b_label: str, b_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    users, ia, ib = np.intersect1d(a_users, b_users, return_indices=True)
    if not len(users):
        raise BenchError(f"{a_label!r} and {b_label!r} scored disjoint user sets; nothing to pair")
    return ia, ib


@dataclass
class SignificanceReport:
    dataset: str
    protocol: str
    metric: str          # the per-user metric tested (gauc when auc was asked for)
    requested: str       # the metric the caller asked for
    test: str
    alpha: float
    rows: pd.DataFrame   # one row per comparison, see COLUMNS
    comparison: str = "best-baseline"  # best-baseline | vs-<reference> | all-pairs: part of the file name
    written: list = field(default_factory=list)  # the files bench.api.significance wrote

    COLUMNS = ("method", "reference", "metric", "n_users", "n_seeds", "reference_n_seeds", "mean", "reference_mean",
               "seed_mean", "seed_std", "reference_seed_mean", "reference_seed_std", "diff", "ci_low", "ci_high",
               "improvement_pct", "t_p", "wilcoxon_p", "holm_p", "effect_size", "verdict")

    def marks(self) -> dict[str, str]:
        """"†" for each label significantly better than every reference it was compared with."""
        out = {}
        for label, verdicts in self.rows.groupby("method")["verdict"]:
            if (verdicts == "better").all():
                out[label] = "†"
        return out

    def to_csv(self) -> str:
        return self.rows.to_csv(index=False)

    def to_markdown(self) -> str:
        def p(x):
            return "< 1e-4" if x < 1e-4 else f"{x:.4f}"

        def seeds(mean, std, n):
            return f"{mean:.4f}" + (f" ± {std:.4f}" if n > 1 and not pd.isna(std) else "")

        rows = []
        for r in self.rows.itertuples(index=False):
            rows.append([r.method, r.reference, r.n_users, f"{r.n_seeds}/{r.reference_n_seeds}",
                         seeds(r.seed_mean, r.seed_std, r.n_seeds),
                         seeds(r.reference_seed_mean, r.reference_seed_std, r.reference_n_seeds),
                         f"{r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
                         "-" if pd.isna(r.improvement_pct) else f"{r.improvement_pct:+.2f}",
                         p(r.t_p), p(r.wilcoxon_p), p(r.holm_p), f"{r.effect_size:+.3f}",
                         r.verdict + (" †" if r.verdict == "better" else "")])
        heads = ["Method", "Reference", "users", "seeds", f"{header(self.metric)} (per seed)", "Reference (per seed)",
                 "Diff [95% CI]", "Impr. (%)", "t-test p", "Wilcoxon p", "Holm p", "d", "Verdict"]
        test = ("Wilcoxon signed-rank (zero differences dropped)" if self.test == "wilcoxon" else "paired t-test")
        stand_in = (f" {header(self.metric)} was tested because AUC was asked for." if self.requested != self.metric
                    else "")
        legend = (f"\n\nDataset `{self.dataset}`, protocol `{self.protocol}`, metric {header(self.metric)}.{stand_in} "
                  f"Paired per user, each user's value averaged over a method's seeds; per-seed columns are "
                  f"mean ± std over seeds. Test: {test}; Holm correction across all {len(self.rows)} comparisons; "
                  f"alpha = {self.alpha}. † / better: Holm p < alpha and Diff > 0; worse: Holm p < alpha and Diff < 0. "
                  f"CI: seeded paired bootstrap of the mean difference. d: mean/std of the per-user differences. "
                  f"Pooled AUC has no per-user value, so GAUC stands in for AUC per user.\n")
        return tabulate(rows, headers=heads, tablefmt="github", disable_numparse=True) + legend

    def write(self, out_dir) -> list[Path]:
        base = Path(out_dir) / self.dataset
        paths = []
        for ext, text in (("md", self.to_markdown()), ("csv", self.to_csv())):
            suffix = "" if self.comparison == "best-baseline" else f"-{self.comparison}"
            path = base / f"significance-{self.protocol}-{self.metric}{suffix}.{ext}"
            write_text(path, text)
            paths.append(path)
        return paths


def compare(root, dataset: str, protocol_tag: str = "sampled-uniform-n99", metric: str = "ndcg@10",
            reference: str | None = None, all_pairs: bool = False, alpha: float = 0.05,
            test: str = "wilcoxon", n_boot: int = 2000, seed: int = 0,
            methods: list[str] | None = None) -> SignificanceReport:
    """Every method vs the best baseline (or vs `reference`, or every pair), Holm-corrected. `methods`: only these
    (labels or method names) are tested, besides the reference, so Holm corrects over that family alone (e.g. an
    ablation table: each ablation against the full method)."""
    return compare_metrics(root, dataset, protocol_tag, [metric], reference, all_pairs, alpha, test, n_boot, seed,
                           methods)[metric]


def compare_metrics(root, dataset: str, protocol_tag: str, metrics: list[str], reference: str | None = None,
                    all_pairs: bool = False, alpha: float = 0.05, test: str = "wilcoxon", n_boot: int = 2000,
                    seed: int = 0, methods: list[str] | None = None) -> dict[str, SignificanceReport]:
    """`compare` for several metrics, {metric: report}: each cell is read, and each label's seeds are pooled, once
    for all of them (a leaderboard marks every metric)."""
    if test not in TESTS:
        raise BenchError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    keys = {metric: _tested_metric(metric) for metric in metrics}
    per_user, kinds = _load(root, dataset, protocol_tag, sorted(set(keys.values())))
    several = sorted(lab for lab in per_user if label_name(lab) == reference and lab != reference)
    if methods:  # a label is the name, or name[hash] where a name has several configurations
        named = {lab: {lab, label_name(lab)} for lab in per_user}
        missing = [m for m in methods if not any(m in names for names in named.values())]
        if missing:
            raise BenchError(f"--methods {', '.join(missing)}: no result for {dataset}/{protocol_tag}; "
                             f"has: {', '.join(sorted(per_user))}")
        per_user = {lab: v for lab, v in per_user.items() if named[lab] & set(methods) or lab == reference}
    labels = sorted(per_user, key=lambda lab: (KIND_ORDER.get(kinds[lab], 9), lab))
    if reference is not None and reference not in per_user:
        if several:
            raise BenchError(f"reference method {reference!r} has several configurations in {dataset}/"
                             f"{protocol_tag}: name one, e.g. --reference '{several[0]}'; they are: {', '.join(several)}")
        raise BenchError(f"reference method {reference!r} has no result for {dataset}/{protocol_tag}; "
                         f"has: {', '.join(labels)}")
    pool_index = {lab: _pool_index(lab, [u for u, _ in per_user[lab].values()]) for lab in labels}
    pair_index: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    reports = {}
    for metric, key in keys.items():
        pooled = {lab: np.mean([v[key][i] for (_, v), i in zip(per_user[lab].values(), pool_index[lab][1])], axis=0)
                  for lab in labels}
        seed_means = {lab: pd.Series({s: v[key].mean() for s, (_, v) in per_user[lab].items()}) for lab in labels}
        score = {lab: float(seed_means[lab].mean()) for lab in labels}   # what "best" means: mean over seeds
        pairs = _pairs(labels, kinds, score, reference, all_pairs, dataset, protocol_tag)
        rows = []
        for lab, ref in pairs:
            if (ref, lab) not in pair_index:
                pair_index[ref, lab] = _pair_index(ref, pool_index[ref][0], lab, pool_index[lab][0])
            ia, ib = pair_index[ref, lab]
            r = paired_test(pooled[ref][ia], pooled[lab][ib], n_boot=n_boot, seed=seed)
            rows.append({"method": lab, "reference": ref, "metric": key, "n_users": r["n"],
                         "n_seeds": len(per_user[lab]), "reference_n_seeds": len(per_user[ref]),
                         "mean": r["mean_b"], "reference_mean": r["mean_a"],
                         "seed_mean": score[lab], "seed_std": float(seed_means[lab].std()),
                         "reference_seed_mean": score[ref], "reference_seed_std": float(seed_means[ref].std()),
                         "diff": r["diff"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                         "improvement_pct": r["improvement_pct"], "t_p": r["t_p"], "wilcoxon_p": r["wilcoxon_p"],
                         "effect_size": r["effect_size"]})
        df = pd.DataFrame(rows)
        df["holm_p"] = holm(df["wilcoxon_p" if test == "wilcoxon" else "t_p"].tolist())
        sig = df["holm_p"] < alpha
        df["verdict"] = np.where(sig & (df["diff"] > 0), "better",
                                 np.where(sig & (df["diff"] < 0), "worse", "n.s."))
        # a label's [hash] becomes -hash: brackets in a file name are a glob class in every shell
        ref = reference.replace("[", "-").replace("]", "") if reference is not None else None
        comparison = "all-pairs" if all_pairs else (f"vs-{ref}" if ref is not None else "best-baseline")
        if methods:  # a subset is another report: its own file, never the full comparison's
            comparison += f"-subset-{hashlib.sha1(','.join(sorted(labels)).encode()).hexdigest()[:8]}"
        reports[metric] = SignificanceReport(dataset, protocol_tag, key, metric, test, alpha,
                                             df[list(SignificanceReport.COLUMNS)], comparison)
    return reports


def _pairs(labels: list[str], kinds: dict[str, str], score: dict[str, float], reference: str | None,
           all_pairs: bool, dataset: str, protocol_tag: str) -> list[tuple[str, str]]:
    """(method, reference) pairs: every pair, every label vs `reference`, or each label vs the best other one of a
    reference kind by `score`."""
    if all_pairs:
        pairs = [(b, a) for a, b in itertools.combinations(labels, 2)]   # later (e.g. proposed) vs earlier
    elif reference is not None:
        pairs = [(lab, reference) for lab in labels if lab != reference]
    else:
        pairs = []
        for lab in labels:
            candidates = [c for c in labels if c != lab and kinds[c] in REFERENCE_KINDS]
            if candidates:
                pairs.append((lab, max(candidates, key=lambda c: score[c])))
    if not pairs:
        raise BenchError(f"nothing to compare for {dataset}/{protocol_tag}: methods {', '.join(labels)}; "
                         f"need two methods, one of kind baseline or llm, or pass a reference")
    return pairs
