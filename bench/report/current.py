"""Are the published reports what the published cells give today? Each leaderboard, significance report,
paper-table rendering and learning-curves report under a results root is rebuilt in memory from the cells beside
it (result.json and the compact per-user files, both in git) with the options read back from the report itself,
and compared byte for byte with the file (a curves report's PNG is redrawn with it, not compared). A report left
behind by a new cell, a removed cell or a change of the rendering code is named, with the command that rewrites it;
`bench.py reports` (refresh) rewrites every such report at once. Robustness and diversity reports are not checked:
they come from training runs, not from stored cells."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.evaluate import METRIC_KEYS
from bench.io import write_text
from bench.protocol import Protocol

LEGACY = "legacy"   # results/legacy/: old cells kept for the record, outside every check (see its README)
_METRIC = "|".join(re.escape(k) for k in sorted(METRIC_KEYS, key=len, reverse=True))
LEADERBOARD = re.compile(r"leaderboard-(?P<protocol>.+)\.md")
SIGNIFICANCE = re.compile(rf"significance-(?P<protocol>.+?)-(?P<metric>{_METRIC})(?:-(?P<comparison>.+))?\.md")
REPRODUCE = re.compile(r"reproduce-(?P<table>[a-z0-9]+)-(?P<protocol>.+)\.md")
CURVES = re.compile(r"curves-(?P<protocol>.+)\.md")
TARGET = re.compile(r"Improvement: `([^`]+)` over the best baseline")
PROFILE = re.compile(r"the row is the `([^`]+)` profile's")
ALPHA = re.compile(r"alpha = ([0-9]*\.?[0-9]+)")


@dataclass
class Rebuilt:
    """One report as it would be written now: {file name: text}, the command that writes it, and what draws its
    figure into a folder (the PNG is rewritten with the text files, not compared: its bytes depend on matplotlib)."""
    files: dict[str, str]
    command: str
    draw: Callable[[Path], object] | None = None


def _leaderboard(root: Path, dataset: str, md: Path) -> Rebuilt:
    from bench.report import leaderboard as lb_mod
    protocol = LEADERBOARD.fullmatch(md.name)["protocol"]
    target = TARGET.search(md.read_text(encoding="utf-8"))
    target = target[1] if target else None
    lb = lb_mod.build(root, dataset, protocol, target)
    stem = f"leaderboard-{protocol}"
    cmd = (f"bench.py leaderboard --dataset {dataset} --protocol {protocol}"
           + (f" --target '{target}'" if target else ""))
    return Rebuilt({f"{stem}.md": lb_mod.render(lb, "md"), f"{stem}.tex": lb_mod.render(lb, "tex"),
                    f"{stem}.csv": lb_mod.to_csv(lb)}, cmd)


def _significance(root: Path, dataset: str, md: Path) -> Rebuilt:
    from bench.report.significance import compare
    m = SIGNIFICANCE.fullmatch(md.name)
    comparison = m["comparison"] or ""
    text = md.read_text(encoding="utf-8")
    rows = pd.read_csv(md.with_suffix(".csv"), keep_default_na=False)
    reference = str(rows["reference"].iloc[0]) if comparison.startswith("vs-") and len(rows) else None
    # a subset's family is every label in it: the tested methods and their references
    methods = (sorted(set(rows["method"].astype(str)) | set(rows["reference"].astype(str)))
               if "-subset-" in comparison else None)
    test = "ttest" if "Test: paired t-test" in text else "wilcoxon"
    alpha = ALPHA.search(text)
    alpha = float(alpha[1]) if alpha else 0.05
    report = compare(root, dataset, m["protocol"], m["metric"], reference=reference,
                     all_pairs=comparison.startswith("all-pairs"), alpha=alpha, test=test, methods=methods)
    suffix = "" if report.comparison == "best-baseline" else f"-{report.comparison}"
    stem = f"significance-{m['protocol']}-{report.metric}{suffix}"
    options = [f"--reference '{reference}'" if reference else "",
               "--all-pairs" if report.comparison == "all-pairs" else "",
               f"--methods '{','.join(methods)}'" if methods else "", "--test ttest" if test == "ttest" else ""]
    cmd = " ".join([f"bench.py significance --dataset {dataset} --protocol {m['protocol']} --metric {m['metric']}",
                    *filter(None, options)])
    return Rebuilt({f"{stem}.md": report.to_markdown(), f"{stem}.csv": report.to_csv()}, cmd)


def _reproduce(root: Path, dataset: str, md: Path) -> Rebuilt:
    from bench.report.reproduce import side_by_side
    m = REPRODUCE.fullmatch(md.name)
    profile = PROFILE.search(md.read_text(encoding="utf-8"))
    profile = profile[1] if profile else "quick"
    text, df = side_by_side(root, dataset, m["table"], m["protocol"], profile)
    stem = f"reproduce-{m['table']}-{m['protocol']}"
    proto = Protocol.from_tag(m["protocol"])
    cmd = (f"bench.py reproduce --table {m['table']} --dataset {dataset} --negatives {proto.n_negatives}"
           + (f" --users {proto.max_users}" if proto.max_users else "")
           + (f" --profile {profile}" if profile != "quick" else "") + " --no-run")
    return Rebuilt({f"{stem}.md": text, f"{stem}.csv": df.to_csv(index=False)}, cmd)


def _curves(root: Path, dataset: str, md: Path) -> Rebuilt:
    from bench.report.curves import build
    report = build(root, dataset, CURVES.fullmatch(md.name)["protocol"])
    return Rebuilt(report.files(), f"bench.py curves --dataset {dataset} --protocol {report.protocol}",
                   report.write_figure)


KINDS = ((LEADERBOARD, _leaderboard), (SIGNIFICANCE, _significance), (REPRODUCE, _reproduce), (CURVES, _curves))


def reports(root: Path, dataset: str | None = None):
    """(dataset, Markdown file, rebuild function) for every checked report under root (or root/dataset), outside
    legacy/."""
    folders = [Path(root) / dataset] if dataset else sorted(p for p in Path(root).iterdir() if p.is_dir())
    for folder in (f for f in folders if f.is_dir() and f.name != LEGACY):
        for md in sorted(folder.glob("*.md")):
            for pattern, rebuild in KINDS:
                if pattern.fullmatch(md.name):
                    yield folder.name, md, rebuild
                    break


def _rebuild(root: Path, dataset: str, md: Path, rebuild) -> tuple[Rebuilt | None, list[str], str | None]:
    """The report rebuilt now, the names of its files that differ from the stored ones, and the problem that
    keeps it from being rebuilt under its own name (None when it can be)."""
    try:
        now = rebuild(root, dataset, md)
    except (BenchError, KeyError, ValueError, OSError) as exc:
        return None, [], f"report cannot be rebuilt from the cells beside it ({type(exc).__name__}: {exc})"
    if md.name not in now.files:
        return now, [], (f"report's name is not the one its options give now ({', '.join(now.files)}); "
                         f"`{now.command} --out {root}` writes that one")
    differ = [name for name, text in now.files.items()
              if not (md.parent / name).is_file() or (md.parent / name).read_text(encoding="utf-8") != text]
    return now, differ, None


def stale_reports(root: Path) -> tuple[int, list[tuple[str, str]]]:
    """How many reports were checked, and (file, problem) for each that is not what its cells give now."""
    root = Path(root)
    checked, problems = 0, []
    for dataset, md, rebuild in reports(root):
        checked += 1
        now, differ, problem = _rebuild(root, dataset, md, rebuild)
        if problem is None and differ:
            problem = (f"stale report: {', '.join(differ)} differ(s) from what the cells give now; "
                       f"`{now.command} --out {root}` rewrites it (or `bench.py reports --out {root}`)")
        if problem is not None:
            problems.append((str(md.relative_to(root)), problem))
    return checked, problems


def refresh(root: Path, dataset: str | None = None) -> list[tuple[str, str]]:
    """`bench.py reports`: rebuild every report under root (or root/dataset) from its cells and rewrite the files
    that changed; (file, "rewritten" | "unchanged" | the problem) per report."""
    root = Path(root)
    if not root.is_dir() or (dataset and not (root / dataset).is_dir()):
        raise BenchError(f"no results folder {root / (dataset or '')}")
    out = []
    for name, md, rebuild in reports(root, dataset):
        now, differ, problem = _rebuild(root, name, md, rebuild)
        for file in differ:
            write_text(md.parent / file, now.files[file])
        if differ and now.draw is not None:
            now.draw(md.parent)
        out.append((str(md.relative_to(root)), problem or ("rewritten" if differ else "unchanged")))
    return out
