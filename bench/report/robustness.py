"""Robustness report (RQ1) from stored results only: each method's metric under the seen template, the held-out
templates and the perturbations, with mean, std, worst case and the performance drop rate
PDR = 1 - M(variant) / M(seen); a PNG (metric per variant, one line per method); and paired significance tests of
one method against another per variant (Wilcoxon, Holm across variants)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError
from bench.io import write_png, write_text
from bench.report.significance import holm, paired_test, pool_seeds
from bench.results import Protocol, iter_results, method_labels, per_user_values

GROUPS = {"unseen templates": ("template",), "perturbations": ("character", "word", "sentence", "format")}


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
        t2 = tabulate(self.summary.reset_index().values.tolist(), headers=["method", *self.summary.columns],
                      tablefmt="github", floatfmt=".4f")
        floor, chance = self.chance(), ""
        if floor is not None:
            chance = (f"Chance level (random scores, {Protocol.from_tag(self.protocol).n_negatives + 1} candidates): "
                      f"{self.metric} = {floor:.4f}; read every value, and every PDR, against it.\n\n")
        text = (f"# Robustness on `{self.dataset}` ({self.protocol}), metric {self.metric}\n\n{chance}{t1}\n\n"
                f"Per method: the seen-template value, then mean / std / worst and the mean and worst PDR "
                f"(PDR = 1 - M(variant) / M(seen); higher = larger drop) over each group of variants.\n\n{t2}\n")
        if self.tests is not None:
            t3 = tabulate(self.tests.values.tolist(), headers=list(self.tests.columns), tablefmt="github",
                          floatfmt=".4f", disable_numparse=False)
            text += ("\nPaired per-user tests per variant (Wilcoxon signed-rank, Holm across variants, alpha 0.05); "
                     f"diff = {self.tests.attrs.get('a')} - {self.tests.attrs.get('b')}.\n\n{t3}\n")
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
    summary = {}
    for m in values.columns:
        base = values.at[seen, m]
        row = {"seen": base}
        for group, lv in GROUPS.items():
            v = values.loc[levels[levels.isin(lv)].index, m].dropna()
            if len(v):
                pdr = 1 - v / base if base else v * np.nan
                row.update({f"{group} mean": v.mean(), f"{group} std": v.std(ddof=0), f"{group} worst": v.min(),
                            f"{group} PDR mean": pdr.mean(), f"{group} PDR worst": pdr.max()})
        summary[m] = row
    tests = drops = None
    if pair:
        pooled = _pooled({k: f for k, f in per_user.items() if k[0] in pair}, metric)
        tests = _pair_tests(pooled, values.index, pair)
        drops = _drop_tests(pooled, levels, pair, seen)
    return RobustnessReport(dataset, protocol, metric, values, levels, pd.DataFrame(summary).T, tests, drops)


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
    if report.drop_tests is not None:
        p = base / f"{stem}-drop-tests.csv"
        write_text(p, report.drop_tests.to_csv(index=False))
        paths.append(p)
    return paths
