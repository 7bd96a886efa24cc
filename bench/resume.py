"""Epoch checkpoints: a fit that outlives a session resumes from its last finished epoch instead of from scratch.

On 2 CPU cores one BERT4Rec epoch on a 5-core Amazon set takes about 25 minutes, so its quick fit (7 epochs) cannot
finish inside one 3-hour session; cells are resumable, and with this their fits are too. A checkpoint holds
everything the next epoch reads (weights, optimiser moments, the early stopper, every random generator), so a resumed
fit equals an uninterrupted one bit for bit (tested). It is keyed by the data, the params, the seed and the code
(commit and diff hash, taken at the cell's start): a checkpoint left by other code or data is discarded, never
continued. The runner owns the folder (`FitData.resume_dir`) and removes it once the finished fit is saved.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

CHECKPOINT_FILE = "checkpoint.pt"
NOTE_FILE = "checkpoint.json"


def resume_key(fingerprint: str, params: dict, seed: int, git: dict) -> str | None:
    """What a checkpoint must match to be continued; None (no resume) when the code's commit is unknown."""
    if not git.get("commit"):
        return None
    blob = json.dumps({"data": fingerprint, "params": params, "seed": seed, "commit": git["commit"],
                       "dirty": git.get("dirty"), "diff": git.get("diff_sha256")}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def rng_state(generators: Iterable = ()) -> dict[str, Any]:
    """Every random generator a training epoch may draw from (python, numpy, torch CPU/CUDA, given torch.Generators),
    in types that `torch.load(weights_only=True)` reads back."""
    import torch
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"python": [version, list(internal), gauss_next],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "generators": [g.get_state() for g in generators]}


def set_rng_state(state: dict[str, Any], generators: Iterable = ()) -> None:
    import torch
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for g, s in zip(generators, state["generators"], strict=True):
        g.set_state(s)


class FitClock:
    """Wall seconds of a fit that may span several runs: this run's, plus those the checkpoint it continued had
    recorded (the work kept from earlier runs; the part of an epoch that an interruption cut short was lost and is
    not counted). Without it a resumed fit would record only its last run's time."""

    def __init__(self):
        self.started = time.perf_counter()
        self.earlier_runs = 0.0

    def seconds(self) -> float:
        return self.earlier_runs + time.perf_counter() - self.started


class EpochCheckpoint:
    """One training stage's checkpoint in `folder/<stage>/checkpoint.pt`, written atomically after each epoch; with
    a FitClock it records the fit's seconds so far and hands them back on load."""

    def __init__(self, folder: Path, stage: str, key: str, clock: FitClock | None = None):
        self.path = Path(folder) / stage / CHECKPOINT_FILE
        self.key = key
        self.clock = clock

    def load(self, log: Callable[[str], None] = print) -> dict | None:
        """The saved state, or None when there is none or it was left by other code, data or params."""
        import torch
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file costs the resume, never the fit
            log(f"[yellow]warning[/]: ignoring the unreadable checkpoint {self.path}: {exc}")
            return None
        if state.get("key") != self.key:
            log(f"ignoring the checkpoint {self.path}: it was left by other code, data or params; starting afresh")
            return None
        if self.clock is not None and "fit_s" in state:  # a later stage's checkpoint holds the longer time
            self.clock.earlier_runs = max(self.clock.earlier_runs, float(state["fit_s"]))
        return state

    def save(self, state: dict, epochs_done: int) -> None:
        """Write the state after `epochs_done` finished epochs (and a small note `bench.py status` reads)."""
        import torch
        from bench.io import write_json
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        clock = {"fit_s": self.clock.seconds()} if self.clock is not None else {}
        torch.save({**state, **clock, "key": self.key, "epochs_done": epochs_done}, tmp)
        os.replace(tmp, self.path)
        write_json(self.path.with_name(NOTE_FILE), {"stage": self.path.parent.name, "epochs_done": epochs_done,
                                                    "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def checkpoint_for(data, stage: str) -> EpochCheckpoint | None:
    """The stage's checkpoint when the runner gave this fit a resume folder and a key, else None; it keeps the fit's
    clock (`fit_clock`, set by bench.fits.fit_or_load) across runs."""
    folder, key = getattr(data, "resume_dir", None), getattr(data, "resume_key", None)
    clock = getattr(data, "fit_clock", None)
    return EpochCheckpoint(folder, stage, key, clock) if folder is not None and key else None


def progress_note(folder: Path) -> tuple[str, str] | None:
    """What an unfinished fit's resume folder holds, from its latest stage's note: ("train: 3 epochs saved", when),
    or None."""
    from bench.io import read_json
    notes = sorted(Path(folder).glob(f"*/{NOTE_FILE}"), key=lambda p: p.stat().st_mtime)
    if not notes:
        return None
    info = read_json(notes[-1])
    return f"{info.get('stage')}: {info.get('epochs_done')} epochs saved", str(info.get("saved"))


def clear(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
