"""A paper table beside ours: for each of the paper's rows, our mean (± std over seeds) next to the published value
and the difference, with a row for the chance level of our protocol (random scores). The published rows are checked
against the harness's metric invariants too (several fail)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from tabulate import tabulate

from bench.errors import BenchError
from bench.evaluate import invariant_violations
from bench.io import write_text
from bench.protocol import Protocol
from bench.report.leaderboard import build as build_leaderboard
from bench.report.leaderboard import chance_note
from bench.results import config_label

PAPER = Path(__file__).with_name("paper_tables.yaml")


def paper_table(name: str) -> pd.DataFrame:
    spec = yaml.safe_load(PAPER.read_text())
    if name not in spec["tables"]:
        raise BenchError(f"unknown paper table {name!r}; valid: {', '.join(spec['tables'])}")
    rows = {spec["rows"][k]: dict(zip(spec["columns"], v)) for k, v in spec["tables"][name].items()}
    return pd.DataFrame(rows).T


def paper_methods() -> list[str]:
    return list(yaml.safe_load(PAPER.read_text())["rows"].values())


def _expected_hash(method: str, profile: str, overrides: dict) -> str | None:
    """The params hash `profile` (+ overrides) gives `method`, or None where the method has no such profile."""
    from bench.results import profile_params_hash
    try:
        return profile_params_hash(method, profile, overrides)
    except BenchError:
        return None


def _row_label(labels, method: str, profile: str, overrides: dict) -> str | None:
    """The leaderboard label of our row for `method`: its only configuration under the protocol, or, where it has
    several (labelled name[hash]), the one `profile` (+ overrides) gives; None = not run."""
    if method in labels:
        return method
    mine = config_label(method, _expected_hash(method, profile, overrides))
    return mine if mine in labels else None


def side_by_side(root: Path, dataset: str, table: str, protocol: str, profile: str = "quick",
                 overrides: dict | None = None) -> tuple[str, pd.DataFrame]:
    paper = paper_table(table)
    lb = build_leaderboard(root, dataset, protocol, significance=False)
    proto = Protocol.from_tag(protocol)
    chance = proto.chance() or {}  # random scores under our protocol: the floor both columns are read against
    rows, flat = [], []
    for method in paper.index:
        label = _row_label(set(lb.mean.index), method, profile, (overrides or {}).get(method) or {})
        for m in paper.columns:
            ours = lb.mean.at[label, m] if label is not None else float("nan")
            std = lb.std.at[label, m] if label is not None else float("nan")
            flat.append({"method": method, "metric": m, "ours": ours, "ours_std": std, "paper": paper.at[method, m],
                         "diff": ours - paper.at[method, m], "chance": chance.get(m, float("nan"))})
    df = pd.DataFrame(flat)
    for method in paper.index:
        sub = df[df["method"] == method].set_index("metric")
        cells = []
        for m in paper.columns:
            o, p_, d = sub.at[m, "ours"], sub.at[m, "paper"], sub.at[m, "diff"]
            cells.append("not run" if pd.isna(o) else f"{o:.4f} / {p_:.4f} ({d:+.4f})")
        bad = invariant_violations(paper.loc[method].to_dict())
        rows.append([method, *cells, "; ".join(bad) if bad else ""])
    if chance:
        rows.append([f"chance (random scores, {proto.n_negatives + 1} candidates)",
                     *[f"{chance[m]:.4f}" for m in paper.columns], ""])
    md = tabulate(rows, headers=["Method", *[c.upper() for c in paper.columns], "paper row breaks"],
                  tablefmt="github", disable_numparse=True)
    md += (f"\n\nEach cell: ours / paper (ours - paper). Ours: dataset `{dataset}`, protocol `{protocol}`, mean over "
           f"seeds; where a method has several configurations under this protocol, the row is the `{profile}` "
           f"profile's; paper: GANPrompt paper, table `{table}` (N negatives not stated there). The last column lists "
           "the metric invariants the published row violates." + chance_note(protocol)
           + (" The chance row is for our protocol; the paper's chance level is unknown, as is its N." if chance else "") + "\n")
    return md, df


def save(root: Path, dataset: str, table: str, protocol: str, md: str, df: pd.DataFrame) -> list[Path]:
    base = Path(root) / dataset
    paths = [base / f"reproduce-{table}-{protocol}.md", base / f"reproduce-{table}-{protocol}.csv"]
    write_text(paths[0], md)
    write_text(paths[1], df.to_csv(index=False))
    return paths


def write(root: Path, dataset: str, table: str, protocol: str, profile: str = "quick",
          overrides: dict | None = None) -> tuple[str, list[Path]]:
    md, df = side_by_side(root, dataset, table, protocol, profile, overrides)
    return md, save(root, dataset, table, protocol, md, df)
