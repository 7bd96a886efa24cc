"""Robustness report (RQ1) from stored results only: each method's metric under the seen template, the held-out
templates and the perturbations, with mean, std, worst case and the performance drop rate
PDR = 1 - M(variant) / M(seen); a PNG (metric per variant, one line per method); and paired significance tests of
one method against another per variant (Wilcoxon, Holm across variants)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError
from bench.evaluate import chance_metrics
from bench.io import load_npz, write_png, write_text
from bench.report.significance import holm, paired_test
from bench.results import Protocol, iter_results

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

    def order(self) -> list[str]:
        """Seen first, then the held-out templates by number, then the perturbations."""
        def key(v):
            num = re.search(r"unseen-(\d+)$", v)
            return ({"seen": 0, "template": 1}.get(self.levels[v], 2), int(num.group(1)) if num else 0)
        return sorted(self.levels.index, key=key)

    def chance(self) -> float | None:
        proto = Protocol.from_tag(self.protocol)
        return chance_metrics(proto.n_negatives + 1)[self.metric] if proto.mode == "sampled" else None

    def markdown(self) -> str:
        order = self.order()
        vals = self.values.loc[order]
        t1 = tabulate([[v, self.levels[v], *[f"{x:.4f}" for x in vals.loc[v]]] for v in vals.index],
                      headers=["variant", "level", *vals.columns], tablefmt="github")
        t2 = tabulate(self.summary.reset_index().values.tolist(), headers=["method", *self.summary.columns],
                      tablefmt="github", floatfmt=".4f")
        chance = ""
        if self.chance() is not None:
            chance = (f"Chance level (random scores, {Protocol.from_tag(self.protocol).n_negatives + 1} candidates): "
                      f"{self.metric} = {self.chance():.4f}; read every value, and every PDR, against it.\n\n")
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
    hashes: dict[str, set] = {}
    for _, res in found:
        hashes.setdefault(res["method"]["name"], set()).add(res["method"]["params_hash"])
    rows, per_user = [], {}
    for folder, res in found:
        prompt = res["protocol"].get("prompt", {})
        name = res["method"]["name"]
        if len(hashes[name]) > 1:  # two configurations of one method are two methods, never averaged together
            name = f"{name}[{res['method']['params_hash']}]"
        rows.append({"method": name, "variant": prompt.get("variant"), "level": prompt.get("level"),
                     "seed": res["seed"], "value": res["metrics"][metric]})
        per_user[(name, prompt.get("variant"), res["seed"])] = folder / "per_user.npz"
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
    tests = _pair_tests(per_user, values.index, metric, pair) if pair else None
    drops = _drop_tests(per_user, levels, metric, pair, seen) if pair else None
    return RobustnessReport(dataset, protocol, metric, values, levels, pd.DataFrame(summary).T, tests, drops)


def _per_user(per_user: dict, method: str, variant: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(users, per-user metric averaged over seeds) of one method under one variant, or None if not run."""
    runs = [load_npz(f) for (m, v, _), f in sorted(per_user.items()) if m == method and v == variant]
    if not runs:
        return None
    if any(not np.array_equal(r["users"], runs[0]["users"]) for r in runs):
        raise BenchError(f"robustness: {method} scored different users across seeds under {variant}")
    return runs[0]["users"], np.mean([r[metric] for r in runs], 0)


def _drop_tests(per_user: dict, levels: pd.Series, metric: str, pair: tuple[str, str], seen: str,
                n_boot: int = 2000, seed: int = 0) -> pd.DataFrame | None:
    """Per group of variants: does method a lose less than method b when the prompt changes?"""
    a, b = pair
    base = {m: _per_user(per_user, m, seen, metric) for m in pair}
    if any(x is None for x in base.values()):
        return None
    if not np.array_equal(base[a][0], base[b][0]):
        raise BenchError(f"robustness: {a} and {b} scored different users under {seen}")
    rows = []
    rng = np.random.default_rng(seed)
    for group, lv in GROUPS.items():
        variants = [v for v in levels[levels.isin(lv)].index
                    if all(_per_user(per_user, m, v, metric) is not None for m in pair)]
        if not variants:
            continue
        var = {m: np.mean([_per_user(per_user, m, v, metric)[1] for v in variants], 0) for m in pair}
        drop = {m: base[m][1] - var[m] for m in pair}
        r = paired_test(drop[b], drop[a], n_boot=n_boot, seed=seed)  # diff = drop_a - drop_b
        n = len(drop[a])
        idx = rng.integers(0, n, size=(n_boot, n))

        def pdr(m, i=slice(None)):
            s = base[m][1][i].mean(-1)
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


def _pair_tests(per_user: dict, variants, metric: str, pair: tuple[str, str]) -> pd.DataFrame:
    a, b = pair
    rows = []
    for v in variants:
        seeds = sorted({s for (m, vv, s) in per_user if m == a and vv == v} & {s for (m, vv, s) in per_user
                                                                                if m == b and vv == v})
        if not seeds:
            continue
        xa, xb = [], []
        for s in seeds:
            za, zb = load_npz(per_user[(a, v, s)]), load_npz(per_user[(b, v, s)])
            if not np.array_equal(za["users"], zb["users"]):
                raise BenchError(f"robustness: {a} and {b} scored different users under {v}")
            xa.append(za[metric]), xb.append(zb[metric])
        r = paired_test(np.mean(xb, 0), np.mean(xa, 0), n_boot=1000)  # difference = a - b
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
    if report.chance() is not None:
        ax.axhline(report.chance(), ls="--", color="grey", label="chance (random scores)")
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
