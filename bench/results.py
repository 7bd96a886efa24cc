"""Result schema, the atomic store, and resume.

A cell = (dataset, method + params, seed, protocol). Its folder:
  <root>/<dataset>/<protocol>/<method>/<params_hash>/seed<seed>/
      per_user.npz      written first (local artifact: candidates and scores; git-ignored)
      per_user.csv.gz   compact per-user file (user token, rank, candidates, GAUC): committed with published cells;
                        every metric but pooled AUC and every significance test recompute from it
      result.json       written last and atomically: its presence means the cell is finished
"""
from __future__ import annotations

import datetime as _dt
import functools
import gzip
import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bench.errors import BenchError
from bench.evaluate import evaluate_full, per_user_from_ranks
from bench.io import _atomic, read_json, sha256_json, write_json, write_npz
from bench.paths import PROJECT_ROOT
from bench.protocol import SUBSAMPLE_SEED, Protocol  # noqa: F401  (re-exported: they lived here)

SCHEMA_VERSION = 1
COMPACT_FILE = "per_user.csv.gz"
PUBLISHED_DIR = "results"   # the tracked reference results; everything else (runs/, $LLMREC_RESULTS) is a run folder
PACKAGES = ("torch", "recbole", "numpy", "pandas", "scipy", "scikit-learn", "transformers", "peft", "llmrec-bench")


def params_hash(params: dict) -> str:
    return sha256_json(params)[:8]


SAFETY_STOPS = ("max_minutes", "pretrain_max_minutes")  # wall-clock safety stops: they bound no work unless they fire


def work_hash(params: dict | None, recorded_hash: str | None = None) -> str | None:
    """The params hash without the wall-clock safety stops: two configurations that differ only there do the same
    work (what `run --dry-run` matches its time records by). `recorded_hash` for a cell that recorded no params."""
    if params is None:
        return recorded_hash
    return params_hash({k: v for k, v in params.items() if k not in SAFETY_STOPS})


def cell_dir(root: Path, dataset: str | None, protocol: Protocol, method: str, params: dict, seed: int) -> Path:
    base = Path(root) / dataset if dataset else Path(root)
    return base / protocol.tag / method / params_hash(params) / f"seed{seed}"


def is_finished(folder: Path, fingerprint: str) -> bool:
    path = folder / "result.json"
    if not path.is_file():
        return False
    try:
        return read_json(path)["dataset"]["fingerprint"] == fingerprint
    except (ValueError, KeyError):
        return False


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(*args: str) -> subprocess.CompletedProcess:
    # --no-optional-locks: `git status` otherwise takes .git/index.lock to refresh the index, and a status killed by
    # the timeout on a loaded machine leaves the lock behind, which then blocks every commit in the repository
    return subprocess.run(["git", "--no-optional-locks", *args], cwd=PROJECT_ROOT, capture_output=True, timeout=30)


# Published results are outputs, not code: writing them must not make the tree look dirty to the next cell.
_NOT_CODE = (f":(exclude){PUBLISHED_DIR}",)


def git_state() -> dict[str, Any]:
    """Commit, dirty flag and a hash of what differs from it (`git diff HEAD` plus the content of untracked files
    that are not ignored), outside the published results folder. Taken when a cell starts."""
    try:
        head = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--untracked-files=all", "--", ".", *_NOT_CODE)
        if head.returncode or status.returncode:
            return {"commit": None, "dirty": None, "diff_sha256": None}
        dirty = bool(status.stdout.strip())
        digest = None
        if dirty:
            h = hashlib.sha256(_git("diff", "HEAD", "--binary", "--", ".", *_NOT_CODE).stdout)
            untracked = _git("ls-files", "--others", "--exclude-standard", "-z", "--", ".", *_NOT_CODE).stdout
            for name in sorted(n for n in untracked.split(b"\0") if n):
                h.update(b"\0" + name + b"\0")
                try:
                    h.update((PROJECT_ROOT / name.decode()).read_bytes())
                except OSError:
                    h.update(b"<unreadable>")
            digest = h.hexdigest()
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None, "diff_sha256": None}
    return {"commit": head.stdout.decode().strip() or None, "dirty": dirty, "diff_sha256": digest}


def commit_exists(commit: str) -> bool:
    """Whether `commit` is a commit this repository's history contains."""
    try:
        return _git("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def published_root() -> Path:
    return PROJECT_ROOT / PUBLISHED_DIR


def is_published(root: Path) -> bool:
    """True when `root` is (inside) the tracked reference results folder."""
    root, pub = Path(root).resolve(), published_root().resolve()
    return root == pub or pub in root.parents


def check_publishable(state: dict, root: Path) -> None:
    """A cell that ran on an uncommitted tree cannot go into the published results."""
    if not is_published(root):
        return
    if not state.get("commit") or state.get("dirty") is not False:
        why = "the working tree has uncommitted changes" if state.get("dirty") else "the git state is unknown"
        raise BenchError(f"refusing to publish into {root}: {why} (commit them, or write to a run folder: "
                         "leave --out at its default)")


def environment(device: str = "cpu", git: dict | None = None) -> dict[str, Any]:
    threads = None
    try:
        import torch
        threads = torch.get_num_threads()
    except ImportError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": threads, "device": device, "packages": package_versions(),
            "git": git if git is not None else git_state()}


def write_compact(path: Path, user_tokens: np.ndarray, rank: np.ndarray, n_neg: np.ndarray, gauc: np.ndarray
                  ) -> None:
    """user,rank,n_candidates,gauc per line; floats as repr (round-trips exactly); gzip without a timestamp, so the
    same values always give the same bytes."""
    lines = ["user,rank,n_candidates,gauc"]
    for u, r, n, g in zip(user_tokens, rank, n_neg, gauc):
        u = str(u)
        if any(c in u for c in ',"\n\r'):
            u = '"' + u.replace('"', '""') + '"'
        lines.append(f"{u},{int(r)},{int(n) + 1},{float(g)!r}")
    text = ("\n".join(lines) + "\n").encode()
    _atomic(path, lambda fh: fh.write(gzip.compress(text, compresslevel=9, mtime=0)))


def read_compact(path: Path) -> dict[str, np.ndarray]:
    """The compact per-user file -> users (tokens), rank, n_neg, gauc; a malformed file is a one-line error.
    Reads are cached by (path, inode, size, mtime): the audit rebuilds every report from the same cells, so
    parsing each gzip'd CSV once saves most of its time. The arrays are shared, and therefore read-only."""
    return _read_compact_cached(*_file_key(Path(path)))


def _unreadable(path, exc: Exception) -> BenchError:
    return BenchError(f"{path}: cannot read the per-user file ({type(exc).__name__}: {exc})".replace("\n", " "))


def _file_key(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError as exc:
        raise _unreadable(path, exc) from None
    # atomic writes replace the file, so a rewrite changes the inode even within one mtime tick
    return str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=128)
def _read_compact_cached(path: str, device: int, inode: int, size: int, mtime_ns: int) -> dict[str, np.ndarray]:
    import pandas as pd
    try:
        df = pd.read_csv(path, dtype={"user": str}, keep_default_na=False, compression="gzip",
                         float_precision="round_trip")
    except (OSError, EOFError, ValueError, gzip.BadGzipFile) as exc:
        raise _unreadable(path, exc) from None
    missing = {"user", "rank", "n_candidates", "gauc"} - set(df.columns)
    if missing:
        raise BenchError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    out = {"users": df["user"].to_numpy(dtype=str), "rank": df["rank"].to_numpy(np.int64),
           "n_neg": df["n_candidates"].to_numpy(np.int64) - 1, "gauc": df["gauc"].to_numpy(np.float64)}
    for a in out.values():
        a.flags.writeable = False
    return out


def per_user_table(folder: Path, metrics=()) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(user tokens, {metric: per-user values}) from the compact file, i.e. from what is in git; every metric from
    one read, so a report testing several metrics parses each cell once. Each of `metrics` must be among them."""
    path = Path(folder) / COMPACT_FILE
    if not path.is_file():
        raise BenchError(f"{path} is missing: significance tests read the compact per-user file that published "
                         "cells commit")
    key = _file_key(path)
    z = _read_compact_cached(*key)
    if not _users_are_unique(*key):
        raise BenchError(f"{path}: a user appears twice")
    table = per_user_from_ranks(z["rank"], z["n_neg"], z["gauc"])
    absent = [m for m in metrics if m not in table]
    if absent:
        raise BenchError(f"{path}: no per-user values for metric {absent[0]!r}")
    return z["users"], table


@functools.lru_cache(maxsize=128)
def _users_are_unique(*key) -> bool:
    users = _read_compact_cached(*key)["users"]
    return len(np.unique(users)) == len(users)


def per_user_values(folder: Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(user tokens, per-user values of `metric`) from the compact file, i.e. from what is in git."""
    users, table = per_user_table(folder, [metric])
    return users, table[metric]


def write_cell(folder: Path, result: dict, per_user: dict[str, np.ndarray]) -> None:
    write_npz(folder / "per_user.npz", **per_user)
    tokens = np.asarray(per_user["user_tokens"])[np.asarray(per_user["users"], dtype=np.int64)]
    write_compact(folder / COMPACT_FILE, tokens, per_user["rank"], per_user["n_neg"], per_user["gauc"])
    result = {"schema_version": SCHEMA_VERSION, **result,
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_json(folder / "result.json", result)


def profile_params_hash(method: str, profile: str = "quick", overrides: dict | None = None) -> str:
    """The params hash that `profile` (+ overrides) gives `method` today: the folder its cells go to."""
    from bench.method import get_method
    return params_hash(get_method(method).from_profile(profile, **(overrides or {})).get_params())


def config_label(name: str, params_hash_: str) -> str:
    """The report label of one configuration of a method that has several: name[hash]."""
    return f"{name}[{params_hash_}]"


def label_name(label: str) -> str:
    """The method name behind a report label (`name` or `name[hash]`)."""
    return label.split("[", 1)[0]


def method_labels(names_and_hashes) -> list[str]:
    """Report labels for (method name, params hash) pairs: the name, or name[hash] where one name has several
    configurations, so that two configurations are never averaged together (leaderboard, significance, robustness)."""
    pairs = list(names_and_hashes)
    hashes: dict[str, set] = {}
    for name, h in pairs:
        hashes.setdefault(name, set()).add(h)
    return [name if len(hashes[name]) == 1 else config_label(name, h) for name, h in pairs]


def iter_results(root: Path, dataset: str | None = None) -> Iterator[tuple[Path, dict]]:
    base = Path(root) / dataset if dataset else Path(root)
    for path in sorted(base.rglob("result.json")):
        try:
            result = read_json(path)
        except ValueError as exc:  # skipping it would drop a seed from every report without a word
            raise BenchError(f"{path}: not valid JSON ({exc}); restore it from git, or delete its folder to "
                             f"run the cell again") from None
        yield path.parent, result


def cells_of(root: Path, dataset: str, protocol: str) -> list[tuple[Path, dict]]:
    """Every cell (folder, result) of one dataset and protocol under a results root; the reports built from them
    (leaderboard, significance, curves) all need at least one."""
    cells = list(iter_results(Path(root) / dataset / protocol))
    if not cells:
        raise BenchError(f"no results for dataset {dataset!r}, protocol {protocol!r} under {root}; "
                         f"run `bench.py run --dataset {dataset}` first")
    return cells


def protocol_folders(root: Path, dataset: str) -> Iterator[tuple[Path, Protocol]]:
    """The protocol folders of `dataset` under a results root, sorted, each with its parsed protocol (candidates/,
    fits/, probes/, robustness/ ... hold no cells of a protocol and are skipped)."""
    base = Path(root) / dataset
    if not base.is_dir():
        return
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        try:
            yield folder, Protocol.from_tag(folder.name)
        except BenchError:
            continue


def recompute_metrics(folder: Path, source: str = "auto") -> dict:
    """Recompute every metric from a per-user file alone (what a reader of the results can do). source: "npz" (the
    local file with scores: every metric), "compact" (the committed per_user.csv.gz: every metric but pooled AUC,
    which needs the scores and is returned as None), "auto" (npz where it exists, else compact)."""
    from bench.evaluate import evaluate_sampled
    from bench.io import load_npz
    folder = Path(folder)
    if source not in ("auto", "npz", "compact"):
        raise BenchError(f"recompute_metrics: source {source!r}; valid: auto, npz, compact")
    if source == "npz" or (source == "auto" and (folder / "per_user.npz").is_file()):
        z = load_npz(folder / "per_user.npz")
        if "scores" in z:
            return evaluate_sampled(z["scores"], z["candidates"] == z["target"][:, None]).metrics
        return evaluate_full(z["rank"], z["n_neg"], z["gauc"]).metrics
    z = read_compact(folder / COMPACT_FILE)
    return evaluate_full(z["rank"], z["n_neg"], z["gauc"]).metrics


def fit_time_is_partial(result: dict) -> bool:
    """Whether a result's fit_s covers only the last run of a fit continued from epoch checkpoints: code before
    bench.resume.FitClock recorded no `fit_s_earlier_runs`, so such a time is a lower bound."""
    resumed = bool((result.get("training") or {}).get("resumed"))
    return resumed and (result.get("timings") or {}).get("fit_s_earlier_runs") is None


def stages_kept_at_start(training: dict | None) -> list[str]:
    """The training stages of a result whose best validated state was their starting state (best_step 0 after
    steps were taken): the loop restores that state, so what the stage trains is not in the scores (e.g. CoLLM's
    stage 2 kept at step 0 leaves its mapper at zero output: no collaborative input). Read from the recorded
    training info, so it applies to every published cell."""
    return [name for name, stage in (training or {}).items()
            if isinstance(stage, dict) and stage.get("best_step") == 0 and (stage.get("steps") or 0) > 0]
