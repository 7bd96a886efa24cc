"""Saved fits. A method that can `save` and `load` its trained state is fitted once per (dataset, method, params,
seed) and reloaded by every later cell, so the robustness suite scores the very model the main run scored and an
LLM's 20-minute fit is not repeated. The fit never depends on the test protocol (early stopping always uses the
runner's fixed validation candidates), which is what makes the reuse sound."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

from bench.io import read_json, write_json
from bench.method import Method
from bench.resume import FitClock, clear
from bench.results import params_hash


def fit_dir(root: Path, dataset: str, method: str, params: dict, seed: int) -> Path:
    return Path(root) / dataset / "fits" / method / params_hash(params) / f"seed{seed}"


RESUME_SUFFIX = ".resume"


def resume_dir(folder: Path) -> Path:
    """Where an unfinished fit keeps its epoch checkpoints (bench.resume), beside the saved fit it will become."""
    return Path(folder).parent / f".{Path(folder).name}{RESUME_SUFFIX}"


def resume_dirs(root: Path) -> dict[Path, Path]:
    """Every resume folder under `root`, by the fit folder it belongs to (the inverse of resume_dir)."""
    found = sorted(Path(root).rglob(f"fits/*/*/.seed*{RESUME_SUFFIX}"))
    return {d.parent / d.name[1:-len(RESUME_SUFFIX)]: d for d in found}


def can_save(method: Method) -> bool:
    return method.implements("save")


def fit_or_load(method: Method, data, folder: Path, fingerprint: str, refit: bool = False,
                log: Callable[[str], None] = print) -> tuple[Method, dict]:
    """The fitted method and {"fit_s", "load_s", "reused_from", "fit_s_earlier_runs"}: loaded from `folder` when a
    fit of the same params on the same data is saved there (and refit is False), else fitted now and saved there.
    fit_s is the whole fit's wall time: a fit continued from epoch checkpoints adds the seconds its earlier runs
    recorded in them (fit_s_earlier_runs; 0 for a fit done in one run, None for a saved fit from before it was
    recorded)."""
    folder = Path(folder)
    if refit:  # --force: a fresh fit, not the continuation of an interrupted one
        clear(data.resume_dir)
    if not can_save(method):
        clock = data.fit_clock = FitClock()
        method.fit(data)
        clear(data.resume_dir)   # the fit is finished: its epoch checkpoints are spent
        return method, {"fit_s": clock.seconds(), "load_s": 0.0, "reused_from": None,
                        "fit_s_earlier_runs": clock.earlier_runs}
    meta_path = folder / "fit.json"
    if not refit and meta_path.exists():
        meta = read_json(meta_path)
        if meta.get("fingerprint") == fingerprint and meta.get("params") == method.get_params():
            t0 = time.perf_counter()
            loaded = type(method).load(folder, data)
            loaded.fit_info_ = meta.get("fit_info", {})
            load_s = time.perf_counter() - t0
            log(f"{method.name}: loaded the fit saved in {folder} (fitted in {meta['fit_s']:.0f}s, loaded in "
                f"{load_s:.1f}s)")
            return loaded, {"fit_s": meta["fit_s"], "load_s": load_s, "reused_from": str(folder),
                            "fit_s_earlier_runs": meta.get("fit_s_earlier_runs")}
        log(f"{method.name}: the fit saved in {folder} is for other data or params; fitting again")
    clock = data.fit_clock = FitClock()
    method.fit(data)
    fit_s = clock.seconds()
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    try:  # a failed save costs only the reuse, never the finished fit
        shutil.rmtree(tmp, ignore_errors=True)
        method.save(tmp)
        write_json(tmp / "fit.json", {"fingerprint": fingerprint, "params": method.get_params(), "fit_s": fit_s,
                                      "fit_s_earlier_runs": clock.earlier_runs, "fit_info": dict(method.fit_info_),
                                      "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError as exc:
        log(f"[red]warning[/]: could not save the fit of {method.name} to {folder}: {exc}; later cells refit")
        shutil.rmtree(tmp, ignore_errors=True)
    clear(data.resume_dir)
    return method, {"fit_s": fit_s, "load_s": 0.0, "reused_from": None, "fit_s_earlier_runs": clock.earlier_runs}
