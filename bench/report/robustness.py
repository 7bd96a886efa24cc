"""Robustness report (RQ1) from stored results only: each method's metric under the seen template, the held-out
templates and the perturbations, with mean, std, worst case and the performance drop rate
PDR = 1 - M(variant) / M(seen) and, beside it, the drop against chance cPDR = (M(seen) - M(variant)) / (M(seen) -
chance); a PNG (metric per variant, one line per method); drop tests per method (and of one method against another)
for methods whose seen-template GAUC is significantly above chance, since a model at chance cannot drop and would look
robust; and paired significance tests of one method against another per variant (Wilcoxon, Holm across variants)."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from bench.errors import BenchError
from bench.io import write_png, write_text
from bench.report.significance import WILCOXON_ZERO_METHOD, ZERO_TOL, holm, paired_test, pool_seeds
from bench.results import Protocol, iter_results, method_labels, per_user_values

GROUPS = {"unseen templates": ("template",), "perturbations": ("character", "word", "sentence", "format")}
ALPHA = 0.05


@dataclass
class RobustnessReport:
    dataset: str
    protocol: str
    metric: str
    values: pd.DataFrame      # index: variant, columns: method (mean over seeds)
    levels: pd.Series         # variant -> level
    summary: pd.DataFrame
    tests: pd.DataFrame | None
    drop_tests: pd.DataFrame | None = None
    chance_checks: pd.DataFrame | None = None  # per method: the seen template against chance (see _chance_checks)
    method_drops: pd.DataFrame | None = None   # per method and group: does the metric drop from the seen template?
    skipped: list = field(default_factory=list)  # drop tests not run, and why
    written: list = field(default_factory=list)  # the files bench.api.robustness wrote

    def order(self) -> list[str]:
        """Seen first, then the held-out templates by number, then the perturbations."""
        def key(v):
            num = re.search(r"unseen-(\d+)$", v)
            return ({"seen": 0, "template": 1}.get(self.levels[v], 2), int(num.group(1)) if num else 0)
        return sorted(self.levels.index, key=key)

    def chance(self) -> float | None:
        floor = Protocol.from_tag(self.protocol).chance()
        return None if floor is None else floor[self.metric]

    def markdown(self) -> str:
        order = self.order()
        vals = self.values.loc[order]
        t1 = tabulate([[v, self.levels[v], *[f"{x:.4f}" for x in vals.loc[v]]] for v in vals.index],
                      headers=["variant", "level", *vals.columns], tablefmt="github")
        t2 = tabulate([[m, *[_num(x) for x in row]] for m, row in self.summary.iterrows()],
                      headers=["method", *self.summary.columns], tablefmt="github", disable_numparse=True)
        floor, chance = self.chance(), ""
        if floor is not None:
            chance = (f"Chance level (random scores, {Protocol.from_tag(self.protocol).n_negatives + 1} candidates): "
                      f"{self.metric} = {floor:.4f}; read every value, and every PDR, against it.\n\n")
        text = (f"# Robustness on `{self.dataset}` ({self.protocol}), metric {self.metric}\n\n{chance}{t1}\n\n"
                f"Per method: the seen-template value, then mean / std / worst and the mean and worst PDR "
                f"(PDR = 1 - M(variant) / M(seen); higher = larger drop) over each group of variants, and cPDR, the "
                f"drop against chance: (M(seen) - M(variant)) / (M(seen) - chance) (1 = the variant falls to chance; "
                f"n/a where M(seen) is not clearly above chance).\n\n{t2}\n")
        if self.chance_checks is not None:
            c = self.chance_checks
            t5 = tabulate([[m, _num(r["seen"]), _num(r["chance"]), _num(r["margin_p"]),
                            "n/a" if r["cpdr_reason"] else "yes", _num(r["gauc"]), _num(r["gauc_p"]),
                            "skipped" if r["tests_reason"] else "run"] for m, r in c.iterrows()],
                          headers=["method", f"seen {self.metric}", "chance", "p (> chance)", "cPDR defined",
                                   "seen GAUC", "p (GAUC > 0.5)", "drop tests"], tablefmt="github",
                          disable_numparse=True)
            why = "".join(f"\n- {m}: {r[k]}" for m, r in c.iterrows() for k in ("cpdr_reason", "tests_reason")
                          if r[k])
            text += (f"\nThe seen template against chance, per user: `p (> chance)` is a one-sided one-sample t-test "
                     f"of {self.metric} - chance > 0 (cPDR's denominator; a mean, so a t-test), `p (GAUC > 0.5)` a "
                     f"one-sided one-sample Wilcoxon of GAUC - 0.5 > 0 (random scores give a GAUC symmetric about "
                     f"0.5), alpha {ALPHA}. Drop tests run only for methods whose seen GAUC is above chance: a model "
                     f"at chance has nothing to lose, so no drop is no evidence of robustness.\n\n{t5}\n{why}\n")
        if self.method_drops is not None:
            t6 = tabulate([[_num(x) if isinstance(x, float) else x for x in row]
                           for row in self.method_drops.values.tolist()],
                          headers=list(self.method_drops.columns), tablefmt="github", disable_numparse=True)
            text += ("\nDoes each method drop from the seen template? Per user, drop = M(seen) - mean M over the "
                     "group's variants; bootstrap 95% CI of the mean drop, Wilcoxon on the per-user drops, Holm across "
                     f"rows.\n\n{t6}\n")
        if self.tests is not None:
            t3 = tabulate(self.tests.values.tolist(), headers=list(self.tests.columns), tablefmt="github",
                          floatfmt=".4f", disable_numparse=False)
            text += ("\nPaired per-user tests per variant (Wilcoxon signed-rank, Holm across variants, alpha 0.05); "
                     f"diff = {self.tests.attrs.get('a')} - {self.tests.attrs.get('b')}.\n\n{t3}\n")
        for note in self.skipped:
            text += f"\n{note}\n"
        if self.drop_tests is not None:
            a, b = self.drop_tests.attrs.get("a"), self.drop_tests.attrs.get("b")
            t4 = tabulate(self.drop_tests.values.tolist(), headers=list(self.drop_tests.columns), tablefmt="github",
                          floatfmt=".4f")
            text += (f"\nIs {a}'s drop smaller than {b}'s? Per user, drop = M(seen) - mean M over the group's variants "
                     f"(both methods on the variants each has); PDR = mean drop / mean M(seen). `pdr_diff` = PDR({a}) - "
                     f"PDR({b}) with a user-bootstrap 95% CI; `wilcoxon_p` tests the per-user drop difference; Holm "
                     f"across groups.\n\n{t4}\n")
        return text


def load(root: Path, dataset: str, protocol: str, metric: str) -> tuple[pd.DataFrame, dict]:
    found = [(folder, res) for folder, res in iter_results(Path(root) / dataset / "robustness" / protocol)]
    if not found:
        raise BenchError(f"no robustness results for {dataset}/{protocol} under {root}; run `bench.py robustness` first")
    labels = method_labels((res["method"]["name"], res["method"]["params_hash"]) for _, res in found)
    rows, per_user = [], {}
    for (folder, res), name in zip(found, labels):
        prompt = res["protocol"].get("prompt", {})
        rows.append({"method": name, "variant": prompt.get("variant"), "level": prompt.get("level"),
                     "seed": res["seed"], "value": res["metrics"][metric]})
        per_user[(name, prompt.get("variant"), res["seed"])] = folder
    return pd.DataFrame(rows), per_user


def build(root: Path, dataset: str, protocol: str, metric: str = "ndcg@10", pair: tuple[str, str] | None = None,
          seen: str = "seen-0") -> RobustnessReport:
    df, per_user = load(root, dataset, protocol, metric)
    values = df.pivot_table(index="variant", columns="method", values="value", aggfunc="mean")
    levels = df.groupby("variant")["level"].first()
    if seen not in values.index:
        raise BenchError(f"robustness results for {dataset}/{protocol} lack the seen template {seen!r}")
    floor = (Protocol.from_tag(protocol).chance() or {}).get(metric)
    pooled = _pooled(per_user, metric)
    checks = _chance_checks(pooled, _pooled({k: f for k, f in per_user.items() if k[1] == seen}, "gauc"), seen,
                            metric, floor)
    summary = {}
    for m in values.columns:
        base = values.at[seen, m]
        row = {"seen": base}
        adjusted = m in checks.index and not checks.at[m, "cpdr_reason"]
        for group, lv in GROUPS.items():
            v = values.loc[levels[levels.isin(lv)].index, m].dropna()
            if len(v):
                pdr = 1 - v / base if base else v * np.nan
                cpdr = (base - v) / (base - floor) if adjusted else v * np.nan
                row.update({f"{group} mean": v.mean(), f"{group} std": v.std(ddof=0), f"{group} worst": v.min(),
                            f"{group} PDR mean": pdr.mean(), f"{group} PDR worst": pdr.max(),
                            f"{group} cPDR mean": cpdr.mean(), f"{group} cPDR worst": cpdr.max()})
        summary[m] = row
    above = [m for m in checks.index if not checks.at[m, "tests_reason"]]
    at_chance = [m for m in checks.index if m not in above]
    skipped = [f"Drop tests skipped for {', '.join(at_chance)}: the seen-template GAUC is not significantly above "
               "chance (why: above)."] if at_chance else []
    tests = drops = None
    if pair:
        tests = _pair_tests(pooled, values.index, pair)
        if all(m in above for m in pair):
            drops = _drop_tests(pooled, levels, pair, seen)
        else:
            skipped.append(f"Drop test {pair[0]} vs {pair[1]} skipped: "
                           f"{', '.join(m for m in pair if m not in above)} not above chance on the seen template "
                           "(why: above); the method at chance cannot lose, so it would look the more robust.")
    return RobustnessReport(dataset, protocol, metric, values, levels, pd.DataFrame(summary).T, tests, drops,
                            checks, _method_drop_tests(pooled, levels, seen, above, floor, checks), skipped)


def _num(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.4f}"


def above_chance_p(gauc: np.ndarray) -> float:
    """One-sided one-sample Wilcoxon signed-rank p of per-user GAUC - 0.5 > 0. Random scores give each user a GAUC
    uniform on 0, 1/N, ..., 1, symmetric about 0.5, so the signed-rank test's null holds exactly."""
    d = np.asarray(gauc, dtype=np.float64) - 0.5
    d[np.abs(d) < ZERO_TOL] = 0.0
    if not d.any():
        return 1.0
    with warnings.catch_warnings():  # "too few users for the normal approximation" on tiny inputs
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(d, zero_method=WILCOXON_ZERO_METHOD, alternative="greater").pvalue)


def margin_p(values: np.ndarray, floor: float) -> float:
    """One-sided one-sample t-test p of mean per-user M - chance > 0: the chance level is a mean, and per-user NDCG
    or HR under random scores is skewed, so the signed-rank test's symmetry does not hold there."""
    d = np.asarray(values, dtype=np.float64) - floor
    if len(d) < 2:
        return 1.0
    if d.std(ddof=1) < ZERO_TOL:  # every user alike: scipy returns NaN
        return 0.0 if d.mean() > 0 else 1.0
    return float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)


def _chance_checks(pooled: dict, gauc: dict, seen: str, metric: str, floor: float | None) -> pd.DataFrame:
    """Per method, from its per-user values under the seen template: is the metric clearly above chance (cPDR's
    denominator; else cPDR is n/a) and is GAUC significantly above 0.5 (else its drop tests are skipped)? The
    reasons are None where the answer is yes."""
    rows = {}
    for (m, v), (_, x) in pooled.items():
        if v != seen:
            continue
        g = gauc[(m, v)][1]
        row = {"seen": float(x.mean()), "chance": np.nan if floor is None else floor, "margin_p": np.nan,
               "gauc": float(g.mean()), "gauc_p": above_chance_p(g), "cpdr_reason": None, "tests_reason": None}
        if floor is None:
            row["cpdr_reason"] = f"cPDR n/a: no chance level of {metric} under this protocol"
        else:
            row["margin_p"] = margin_p(x, floor)
            if not row["margin_p"] < ALPHA:
                row["cpdr_reason"] = (f"cPDR n/a: seen {metric} {row['seen']:.4f} is not clearly above chance "
                                      f"{floor:.4f} (one-sided t-test p = {row['margin_p']:.3g} >= {ALPHA})")
        if not row["gauc_p"] < ALPHA:
            row["tests_reason"] = (f"seen GAUC {row['gauc']:.4f} is not significantly above chance 0.5 (one-sided "
                                   f"Wilcoxon p = {row['gauc_p']:.3g} >= {ALPHA}), so a drop from it means nothing")
        rows[m] = row
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def _method_drop_tests(pooled: dict, levels: pd.Series, seen: str, methods: list[str], floor: float | None,
                       checks: pd.DataFrame) -> pd.DataFrame | None:
    """Per method (above chance only) and group of variants: is M(seen) - M(variants) per user different from 0?"""
    rows = []
    for m in methods:
        users, base = pooled[(m, seen)]
        for group, lv in GROUPS.items():
            got = [v for v in levels[levels.isin(lv)].index if (m, v) in pooled]
            for v in got:
                if not np.array_equal(pooled[(m, v)][0], users):
                    raise BenchError(f"robustness: {m} scored other users under {v} than under {seen}")
            if not got:
                continue
            var = np.mean([pooled[(m, v)][1] for v in got], 0)
            r = paired_test(var, base)  # diff = seen - variants = the drop
            adjusted = floor is not None and not checks.at[m, "cpdr_reason"]
            rows.append({"method": m, "group": group, "variants": len(got), "n_users": r["n"], "seen": r["mean_b"],
                         "variants mean": r["mean_a"], "drop": r["diff"],
                         "PDR": r["diff"] / r["mean_b"] if r["mean_b"] else np.nan,
                         "cPDR": r["diff"] / (r["mean_b"] - floor) if adjusted else np.nan,
                         "ci_low": r["ci_low"], "ci_high": r["ci_high"], "wilcoxon_p": r["wilcoxon_p"]})
    if not rows:
        return None
    out = pd.DataFrame(rows)
    out["holm_p"] = holm(out["wilcoxon_p"].tolist())
    out["verdict"] = np.where(out["holm_p"] < ALPHA, np.where(out["drop"] > 0, "drops", "rises"), "n.s.")
    return out


def _pooled(per_user: dict, metric: str) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(method, variant) -> (users, per-user metric averaged over seeds by user token, as significance pools it),
    from each cell's committed compact per-user file (read once)."""
    runs: dict = {}
    for (m, v, seed), folder in per_user.items():
        runs.setdefault((m, v), {})[seed] = per_user_values(folder, "gauc" if metric == "auc" else metric)
    return {key: pool_seeds(f"{key[0]} under {key[1]}", seeds) for key, seeds in runs.items()}


def _paired(pooled: dict, pair: tuple[str, str], variant: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(users, values of a, values of b) under one variant; None unless both methods have it."""
    a, b = pair
    if (a, variant) not in pooled or (b, variant) not in pooled:
        return None
    (ua, xa), (ub, xb) = pooled[(a, variant)], pooled[(b, variant)]
    if not np.array_equal(ua, ub):
        raise BenchError(f"robustness: {a} and {b} scored different users under {variant}")
    return ua, xa, xb


def _drop_tests(pooled: dict, levels: pd.Series, pair: tuple[str, str], seen: str,
                n_boot: int = 2000, seed: int = 0) -> pd.DataFrame | None:
    """Per group of variants: does method a lose less than method b when the prompt changes?"""
    a, b = pair
    base = _paired(pooled, pair, seen)
    if base is None:
        return None
    users, base = base[0], {a: base[1], b: base[2]}
    rows = []
    rng = np.random.default_rng(seed)
    for group, lv in GROUPS.items():
        got = {v: x for v in levels[levels.isin(lv)].index if (x := _paired(pooled, pair, v)) is not None}
        for v, x in got.items():
            if not np.array_equal(x[0], users):
                raise BenchError(f"robustness: {a} and {b} scored other users under {v} than under {seen}")
        variants = list(got)
        if not variants:
            continue
        var = {a: np.mean([got[v][1] for v in variants], 0), b: np.mean([got[v][2] for v in variants], 0)}
        drop = {m: base[m] - var[m] for m in pair}
        r = paired_test(drop[b], drop[a], n_boot=n_boot, seed=seed)  # diff = drop_a - drop_b
        n = len(drop[a])
        idx = rng.integers(0, n, size=(n_boot, n))

        def pdr(m, i=slice(None)):
            s = base[m][i].mean(-1)
            return np.where(s > 0, drop[m][i].mean(-1) / np.where(s > 0, s, 1), np.nan)
        boot = pdr(a, idx) - pdr(b, idx)
        boot = boot[np.isfinite(boot)]
        lo, hi = (np.quantile(boot, [0.025, 0.975]) if len(boot) else (np.nan, np.nan))
        rows.append({"group": group, "variants": len(variants), "n_users": n, f"PDR {a}": float(pdr(a)),
                     f"PDR {b}": float(pdr(b)), "pdr_diff": float(pdr(a) - pdr(b)), "ci_low": float(lo),
                     "ci_high": float(hi), f"drop {a}": float(drop[a].mean()), f"drop {b}": float(drop[b].mean()),
                     "wilcoxon_p": r["wilcoxon_p"]})
    if not rows:
        return None
    out = pd.DataFrame(rows)
    out["holm_p"] = holm(out["wilcoxon_p"].tolist())
    out["verdict"] = np.where(out["holm_p"] < 0.05,
                              np.where(out[f"drop {a}"] < out[f"drop {b}"], f"{a} drops less", f"{b} drops less"),
                              "n.s.")
    out.attrs.update(a=a, b=b)
    return out


def _pair_tests(pooled: dict, variants, pair: tuple[str, str]) -> pd.DataFrame:
    a, b = pair
    rows = []
    for v in variants:
        got = _paired(pooled, pair, v)
        if got is None:
            continue
        _, xa, xb = got
        r = paired_test(xb, xa, n_boot=1000)  # difference = a - b
        rows.append({"variant": v, "n_users": r["n"], a: r["mean_b"], b: r["mean_a"], "diff": r["diff"],
                     "ci_low": r["ci_low"], "ci_high": r["ci_high"], "wilcoxon_p": r["wilcoxon_p"]})
    if not rows:
        raise BenchError(f"robustness: no variant has results for both {a} and {b}")
    out = pd.DataFrame(rows)
    out["holm_p"] = holm(out["wilcoxon_p"].tolist())
    out["verdict"] = np.where(out["holm_p"] < 0.05, np.where(out["diff"] > 0, f"{a} better", f"{b} better"), "n.s.")
    out.attrs.update(a=a, b=b)
    return out


def plot(report: RobustnessReport, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    order = report.order()
    vals = report.values.loc[order]
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * len(vals)), 4.8))
    for m in vals.columns:
        ax.plot(range(len(vals)), vals[m].values, marker="o", label=m)
    floor = report.chance()
    if floor is not None:
        ax.axhline(floor, ls="--", color="grey", label="chance (random scores)")
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels([f"{v} ({report.levels[v]})" for v in vals.index], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(report.metric)
    ax.set_title(f"{report.dataset}: {report.metric} per prompt variant ({report.protocol})")
    ax.legend()
    fig.tight_layout()
    write_png(path, fig)


def write(report: RobustnessReport, root: Path) -> list[Path]:
    base = Path(root) / report.dataset / "robustness"
    stem = f"robustness-{report.protocol}-{report.metric}"
    paths = [base / f"{stem}.md", base / f"{stem}.csv", base / f"{stem}.png"]
    write_text(paths[0], report.markdown())
    write_text(paths[1], report.values.join(report.levels.rename("level")).to_csv(index_label="variant"))
    plot(report, paths[2])
    if report.tests is not None:
        p = base / f"{stem}-tests.csv"
        write_text(p, report.tests.to_csv(index=False))
        paths.append(p)
    if report.chance_checks is not None:
        p = base / f"{stem}-chance.csv"
        write_text(p, report.chance_checks.to_csv(index_label="method"))
        paths.append(p)
    if report.method_drops is not None:
        p = base / f"{stem}-method-drop-tests.csv"
        write_text(p, report.method_drops.to_csv(index=False))
        paths.append(p)
    if report.drop_tests is not None:
        p = base / f"{stem}-drop-tests.csv"
        write_text(p, report.drop_tests.to_csv(index=False))
        paths.append(p)
    return paths
