"""`bench.py audit`: checks the published results (what is in git) so that anyone can trust and recompute them.

Per cell: metric invariants; provenance (a clean commit recorded at the cell's start, present in git history);
staleness (the recorded params are what the method's profile gives today); the compact per-user file is present and
every metric but pooled AUC recomputes from it exactly. Per (dataset, protocol, seed): one candidate file and one
user set shared by every method; per dataset: one data fingerprint. `legacy/` is skipped (see its README).
A budget-stopped cell is reported as a warning: it is kept but marked not reproducible in leaderboards.
Per report (leaderboards, significance reports, paper-table renderings; bench.report.current): rebuilt from the cells
beside it, it equals the committed file, so no table shows what its cells no longer give."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.evaluate import METRIC_KEYS, invariant_violations
from bench.io import read_json
from bench.report.current import LEGACY, stale_reports
from bench.results import COMPACT_FILE, commit_exists, read_compact, recompute_metrics

TOL = 1e-12


@dataclass
class AuditReport:
    cells: int = 0
    reports: int | None = None   # None: reports not checked (--cells-only)
    failures: list[tuple[str, str]] = field(default_factory=list)   # (cell folder, problem)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed_cells(self) -> set[str]:
        return {c for c, _ in self.failures}


def published_cells(root: Path):
    """(folder, result) for every result.json under root, outside legacy/."""
    root = Path(root)
    for path in sorted(root.rglob("result.json")):
        if path.relative_to(root).parts[0] == LEGACY:
            continue
        try:
            yield path.parent, read_json(path)
        except ValueError as exc:
            yield path.parent, {"_unreadable": str(exc)}


def _current_params_hash(method: dict) -> str:
    from bench.results import profile_params_hash
    return profile_params_hash(method["name"], method.get("profile", "quick"), method.get("overrides"))


def check_cell(folder: Path, res: dict, commits: dict[str, bool], root: Path) -> tuple[list[str], list[str]]:
    """Problems and warnings of one cell (`root`: the results root, where a derived cell's source is found)."""
    if "_unreadable" in res:
        return [f"result.json is not valid JSON ({res['_unreadable']})"], []
    bad, warn = [], []
    metrics = res.get("metrics") or {}
    bad += [f"invariant: {v}" for v in invariant_violations(metrics)]
    prov = res.get("provenance")
    if not prov or prov.get("taken") != "cell start":
        bad.append("provenance: no git state taken at the cell's start (recorded when the result was written, or not "
                   "at all)")
    else:
        commit = prov.get("commit")
        if not commit:
            bad.append("provenance: no commit recorded")
        elif prov.get("dirty") is not False:
            bad.append(f"provenance: ran on a dirty tree (commit {commit[:10]} + uncommitted changes)")
        else:
            if commit not in commits:
                commits[commit] = commit_exists(commit)
            if not commits[commit]:
                bad.append(f"provenance: commit {commit[:10]} is not in this repository's history")
    method = res.get("method") or {}
    try:
        now = _current_params_hash(method)
        if now != method.get("params_hash"):
            bad.append(f"stale: params hash {method.get('params_hash')} but the {method.get('profile')} profile of "
                       f"{method.get('name')} now gives {now}")
    except BenchError as exc:
        bad.append(f"stale: cannot rebuild the method's params ({exc})")
    except Exception as exc:  # noqa: BLE001 - a renamed or removed parameter is staleness too
        bad.append(f"stale: cannot rebuild the method's params ({type(exc).__name__}: {exc})")
    if not (folder / COMPACT_FILE).is_file():
        bad.append(f"{COMPACT_FILE} missing: metrics and significance cannot be recomputed from git")
    else:
        try:
            again = recompute_metrics(folder, source="compact")
            off = [k for k in METRIC_KEYS if k != "auc" and metrics.get(k) is not None
                   and abs(again[k] - metrics[k]) > TOL]
            if off:
                bad.append(f"{COMPACT_FILE} does not reproduce {', '.join(off)} (e.g. {off[0]} {again[off[0]]:.6f} "
                           f"vs {metrics[off[0]]:.6f})")
            n = len(read_compact(folder / COMPACT_FILE)["users"])
            if res.get("n_users") is not None and n != res["n_users"]:
                bad.append(f"{COMPACT_FILE} has {n} users, result.json says {res['n_users']}")
        except BenchError as exc:
            bad.append(str(exc))
    if res.get("derived"):
        from bench.derive import check_derived
        if (res["derived"].get("git") or {}).get("dirty") is not False:
            bad.append("derived on a dirty tree (or an unknown git state)")
        bad += check_derived(folder, res, root)
    if (res.get("training") or {}).get("budget_stopped"):
        warn.append("budget-stopped by the wall-clock safety stop: not reproducible (marked in leaderboards)")
    return bad, warn


def audit(root: Path, reports: bool = True) -> AuditReport:
    """`reports=False` checks the cells alone (the report check rebuilds every table: minutes on the 5-core sets)."""
    root = Path(root)
    if not root.is_dir():
        raise BenchError(f"--out {root}: no such folder")
    rep = AuditReport()
    commits: dict[str, bool] = {}
    groups: dict[tuple, list[tuple[str, str | None, frozenset | None]]] = {}
    fingerprints: dict[str, set] = {}
    for folder, res in published_cells(root):
        rep.cells += 1
        rel = str(folder.relative_to(root))
        bad, warn = check_cell(folder, res, commits, root)
        rep.failures += [(rel, b) for b in bad]
        rep.warnings += [(rel, w) for w in warn]
        if "_unreadable" in res:
            continue
        ds = res.get("dataset") or {}
        fingerprints.setdefault(ds.get("name"), set()).add(ds.get("fingerprint"))
        proto = res.get("protocol") or {}
        variant = (proto.get("prompt") or {}).get("variant")
        key = (ds.get("name"), _protocol_tag(proto), res.get("seed"), variant is not None)
        users = None
        if (folder / COMPACT_FILE).is_file():
            try:
                users = frozenset(read_compact(folder / COMPACT_FILE)["users"].tolist())
            except BenchError:
                pass
        groups.setdefault(key, []).append((rel, proto.get("candidates_sha256"), users))
    for (name, tag, seed, _), cells in groups.items():
        digests = {d for _, d, _ in cells if d}
        if len(digests) > 1:
            rep.failures += [(rel, f"{name} {tag} seed {seed}: {len(digests)} different candidate files in one "
                                   "(dataset, protocol, seed)") for rel, _, _ in cells]
        user_sets = [u for _, _, u in cells if u is not None]
        if user_sets and any(u != user_sets[0] for u in user_sets):
            rep.failures += [(rel, f"{name} {tag} seed {seed}: methods scored different user sets")
                             for rel, _, _ in cells]
    for name, fps in fingerprints.items():
        if len(fps) > 1:
            rep.failures.append((str(name), f"dataset {name}: {len(fps)} data fingerprints among published cells"))
    if reports:
        rep.reports, stale = stale_reports(root)
        rep.failures += stale
    return rep


def _protocol_tag(proto: dict) -> str:
    from bench.protocol import tag_of  # not Protocol: a stored result may name anything, and the audit reports it
    return tag_of(proto.get("mode"), proto.get("sampler", "?"), int(proto.get("n_negatives") or 0),
                  proto.get("max_users"))


def summary_lines(rep: AuditReport) -> list[str]:
    lines = [f"FAIL {cell}: {problem}" for cell, problem in rep.failures]
    lines += [f"warn {cell}: {w}" for cell, w in rep.warnings]
    n_bad = len(rep.failed_cells)
    checked = f" and {rep.reports} report(s)" if rep.reports is not None else " (reports not checked)"
    lines.append(f"audit: {rep.cells} cell(s){checked}, {n_bad} failing, "
                 f"{len(rep.warnings)} warning(s)" + ("" if n_bad else ": all pass"))
    return lines
