"""Protocol comparison (Krichene & Rendle, 2020): the same trained models under full ranking, uniform-N and
popularity-N sampled candidates, and how far the orderings of the models agree (Kendall tau)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from scipy.stats import kendalltau
from tabulate import tabulate

from bench.errors import BenchError
from bench.io import write_text
from bench.results import iter_results


@dataclass
class ProtocolComparison:
    values: pd.DataFrame   # index: method, columns: protocol tags (mean over seeds)
    ranks: pd.DataFrame    # 1 = best under that protocol
    taus: pd.DataFrame     # protocol pair -> tau, p-value
    metric: str
    written: list = field(default_factory=list)  # the files bench.api.compare_protocols wrote

    @property
    def markdown(self) -> str:
        both = self.values.copy()
        for col in self.values.columns:
            both[col] = [f"{v:.4f} ({int(r)})" for v, r in zip(self.values[col], self.ranks[col])]
        head = (f"{self.metric} per protocol (rank of the method under that protocol in brackets; same trained "
                "models, mean over seeds)\n\n")
        t1 = tabulate(both.reset_index().values.tolist(), headers=["Method", *both.columns], tablefmt="github")
        t2 = tabulate(self.taus.values.tolist(), headers=list(self.taus.columns), tablefmt="github", floatfmt=".3f")
        return head + t1 + "\n\nKendall tau between the orderings of the methods\n\n" + t2 + "\n"


def compare(root: Path, dataset: str, methods: list[str] | None, negatives: int = 99,
            metric: str = "ndcg@10") -> ProtocolComparison:
    tags = ["full", f"sampled-uniform-n{negatives}", f"sampled-popularity-n{negatives}"]
    rows = []
    for tag in tags:
        for _, res in iter_results(Path(root) / dataset / tag):
            name = res["method"]["name"]
            if methods is None or name in methods:
                rows.append({"method": name, "protocol": tag, "seed": res["seed"], "value": res["metrics"][metric]})
    df = pd.DataFrame(rows, columns=["method", "protocol", "seed", "value"])
    values = df.pivot_table(index="method", columns="protocol", values="value", aggfunc="mean")
    missing = [(m, t) for m in (methods or values.index) for t in tags
               if m not in values.index or t not in values.columns or pd.isna(values.at[m, t])]
    if missing:
        raise BenchError(f"compare-protocols on {dataset}: no stored result for "
                         + ", ".join(f"{m} under {t}" for m, t in missing[:5])
                         + (" ..." if len(missing) > 5 else "") + "; run without --no-run")
    values = values[tags]
    if len(values) < 2:
        raise BenchError("compare-protocols needs at least two methods")
    ranks = values.rank(ascending=False, method="min")
    taus = []
    for a, b in itertools.combinations(tags, 2):
        tau, p = kendalltau(values[a], values[b])
        taus.append({"protocol A": a, "protocol B": b, "kendall tau": tau, "p-value": p})
    return ProtocolComparison(values, ranks, pd.DataFrame(taus), metric)


def write(table: ProtocolComparison, root: Path, dataset: str) -> list[Path]:
    base = Path(root) / dataset
    md, csv = base / f"compare-protocols-{table.metric}.md", base / f"compare-protocols-{table.metric}.csv"
    write_text(md, table.markdown)
    write_text(csv, table.values.join(table.ranks, rsuffix=" rank").to_csv())
    return [md, csv]
