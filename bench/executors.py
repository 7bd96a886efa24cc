"""Executors: how a grid of cells runs. `local` runs them one after another in this process; `ray` makes each cell a
Ray task with its CPU/GPU needs (no home-made scheduler). Both use the same run_cell (same atomic writer, same
resume: finished cells are skipped); a failed cell is reported and retried once while the others go on. Deterministic
errors (BenchError: bad data, bad parameters, impossible protocols) fail the same way every time and are not retried."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.errors import BenchError
from bench.runner import Cell, run_cell

EXECUTORS = ("local", "ray")


@dataclass
class Outcome:
    cell: Cell
    status: str                 # "done" | "skipped" | "failed"
    results: list               # run_cell's [(status, result, folder)] for a finished cell
    error: str | None = None
    attempts: int = 1


def _run_once(cell: Cell, root: str, data_root, force: bool) -> list:
    # results travel back without the per-user arrays: they are on disk already
    return [(s, r, str(f)) for s, r, f in run_cell(cell, Path(root), data_root=data_root, force=force,
                                                   log=lambda m: None)]


def run_local(cells: list[Cell], root: Path, data_root=None, force: bool = False, retries: int = 1,
              on_outcome: Callable[[Outcome], None] | None = None,
              log: Callable[[str], None] = print, on_progress=None) -> list[Outcome]:
    out = []
    for cell in cells:
        outcome = None
        for attempt in range(1, retries + 2):
            try:
                res = run_cell(cell, Path(root), data_root=data_root, force=force, log=log, on_progress=on_progress)
                status = "skipped" if all(s == "skipped" for s, _, _ in res) else "done"
                outcome = Outcome(cell, status, res, attempts=attempt)
                break
            except (KeyboardInterrupt, SystemExit):
                raise
            except BenchError as exc:  # deterministic: a retry would fail the same way
                outcome = Outcome(cell, "failed", [], str(exc), attempts=attempt)
                break
            except Exception as exc:  # noqa: BLE001 - a failed cell must not stop the grid
                outcome = Outcome(cell, "failed", [], f"{type(exc).__name__}: {exc}", attempts=attempt)
                log(f"cell {cell.dataset} {cell.method} seed {cell.seed} failed (attempt {attempt}): {outcome.error}")
        out.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return out


def resources_of(cell: Cell, gpus_in_cluster: float = 0.0) -> dict:
    """A cell's Ray resources: methods declare `resources` (default one CPU); the GPU request is kept only where the
    cluster has GPUs (else the task would wait forever), and the method then runs on the CPU."""
    from bench.method import get_method
    res = dict(getattr(get_method(cell.method), "resources", {"num_cpus": 1}))
    res.setdefault("num_cpus", 1)
    if not gpus_in_cluster:
        res.pop("num_gpus", None)
    return res


def run_ray(cells: list[Cell], root: Path, data_root=None, force: bool = False, retries: int = 1,
            address: str | None = None, num_cpus: int | None = None,
            on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    try:
        import ray
    except ImportError as exc:
        raise BenchError(f"--executor ray needs the ray package ({exc})") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else (num_cpus or os.cpu_count()),
                 include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("LLMREC_")}})
    task = ray.remote(_run_once)
    gpus = ray.cluster_resources().get("GPU", 0.0)
    root_s = str(Path(root).resolve())
    pending = {}
    for cell in cells:
        ref = task.options(max_retries=0, **resources_of(cell, gpus)).remote(cell, root_s, data_root, force)
        pending[ref] = (cell, 1)
    outcomes = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            cell, attempt = pending.pop(ref)
            try:
                res = ray.get(ref)
                status = "skipped" if all(s == "skipped" for s, _, _ in res) else "done"
                outcome = Outcome(cell, status, [(s, r, Path(f)) for s, r, f in res], attempts=attempt)
            except Exception as exc:  # noqa: BLE001 - task errors (and dead workers) come back here
                cause = getattr(exc, "cause", None) or exc
                if attempt <= retries and not isinstance(cause, BenchError):
                    again = task.options(max_retries=0, **resources_of(cell, gpus)).remote(cell, root_s, data_root,
                                                                                           force)
                    pending[again] = (cell, attempt + 1)
                    continue
                error = str(cause) if isinstance(cause, BenchError) else f"{type(cause).__name__}: {cause}"
                outcome = Outcome(cell, "failed", [], error[:500], attempts=attempt)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
    finally:
        if started_here:
            ray.shutdown()
    order = {id(c): i for i, c in enumerate(cells)}
    return sorted(outcomes, key=lambda o: order.get(id(o.cell), 0))


def grid_status(root: Path, dataset: str | None = None) -> list[dict]:
    """Every cell folder under the results root: done / running / interrupted / failed, with timings."""
    import socket
    from bench.io import read_json
    from bench.fits import resume_dirs
    from bench.resume import progress_note
    base = Path(root) / dataset if dataset else Path(root)
    rows = []
    seen = set()
    for marker in ("result.json", "running.json", "failed.json"):
        for path in sorted(base.rglob(marker)):
            folder = path.parent
            if folder in seen:
                continue
            seen.add(folder)
            rel = folder.relative_to(root)
            row = {"cell": str(rel), "state": None, "seconds": None, "detail": ""}
            if (folder / "result.json").is_file():
                res = read_json(folder / "result.json")
                row.update(state="done", seconds=res.get("timings", {}).get("total_s"),
                           detail=f"ndcg@10 {res['metrics'].get('ndcg@10', float('nan')):.4f}")
            elif (folder / "running.json").is_file():
                info = read_json(folder / "running.json")
                alive = info.get("host") != socket.gethostname() or _pid_alive(info.get("pid"))
                row.update(state="running" if alive else "interrupted", detail=f"since {info.get('started')}")
            else:
                info = read_json(folder / "failed.json")
                row.update(state="failed", detail=info.get("error", "")[:120])
            rows.append(row)
    for fit, folder in resume_dirs(base).items():  # unfinished fits (bench.resume)
        if note := progress_note(folder):
            rows.append({"cell": str(fit.relative_to(root)), "state": "resumable", "seconds": None,
                         "detail": f"{note[0]} {note[1]}; the next run continues it"})
    return sorted(rows, key=lambda r: r["cell"])


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False

