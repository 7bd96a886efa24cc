"""Result schema, the atomic store, and resume.

A cell = (dataset, method + params, seed, protocol). Its folder:
  <root>/<dataset>/<protocol>/<method>/<params_hash>/seed<seed>/
      per_user.npz   written first
      result.json    written last and atomically: its presence means the cell is finished
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bench.errors import BenchError
from bench.evaluate import chance_metrics
from bench.io import read_json, sha256_json, write_json, write_npz
from bench.paths import PROJECT_ROOT

SCHEMA_VERSION = 1
PACKAGES = ("torch", "recbole", "numpy", "pandas", "scipy", "scikit-learn", "transformers", "peft", "llmrec-bench")


@dataclass(frozen=True)
class Protocol:
    mode: str = "sampled"          # "sampled" | "full"
    sampler: str = "uniform"       # sampled only: "uniform" | "popularity"
    n_negatives: int = 99          # sampled only
    max_users: int | None = None   # a seeded test-user subsample shared by every method (CPU budgets for LLMs)

    @property
    def tag(self) -> str:
        base = "full" if self.mode == "full" else f"sampled-{self.sampler}-n{self.n_negatives}"
        return base + (f"-u{self.max_users}" if self.max_users else "")

    @classmethod
    def from_tag(cls, tag: str) -> "Protocol":
        """Inverse of `tag`: 'full', 'full-u500', 'sampled-uniform-n99', 'sampled-popularity-n19-u100'."""
        m = re.fullmatch(r"(?:(full)|sampled-(\w+?)-n(\d+))(?:-u(\d+))?", tag)
        if not m:
            raise BenchError(f"protocol tag {tag!r}: expected full, full-u<USERS> or sampled-<SAMPLER>-n<N>[-u<USERS>]")
        users = int(m.group(4)) if m.group(4) else None
        if m.group(1):
            return cls("full", max_users=users)
        return cls("sampled", m.group(2), int(m.group(3)), users)

    def chance(self) -> dict[str, float] | None:
        """Expected metrics of random scores over this protocol's 1 + N candidates; None under full ranking."""
        return chance_metrics(self.n_negatives + 1) if self.mode == "sampled" else None

    def to_dict(self) -> dict:
        users = {"max_users": self.max_users,
                 "users": "all test users" if not self.max_users else
                 "seeded subsample of test users, the same for every method (seed = run seed)"}
        if self.mode == "full":
            return {"mode": "full", **users,
                    "masking": "each user's earlier items (history) are excluded; the target never is"}
        return {"mode": "sampled", "sampler": self.sampler, "n_negatives": self.n_negatives, **users,
                "negatives": "never an item the user interacted with in any split; positive at a random column"}

    def user_rows(self, n_users: int, seed: int) -> np.ndarray:
        """Indices of the evaluated users: all, or a seeded subsample that depends only on (seed, n_users)."""
        if not self.max_users or self.max_users >= n_users:
            return np.arange(n_users)
        rng = np.random.default_rng([seed, 7919])
        return np.sort(rng.choice(n_users, size=self.max_users, replace=False))


def params_hash(params: dict) -> str:
    return sha256_json(params)[:8]


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


def git_state() -> dict[str, Any]:
    def git(*args):
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip() or None if head.returncode == 0 else None,
            "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}


def environment(device: str = "cpu") -> dict[str, Any]:
    threads = None
    try:
        import torch
        threads = torch.get_num_threads()
    except ImportError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": threads, "device": device, "packages": package_versions(), "git": git_state()}


def write_cell(folder: Path, result: dict, per_user: dict[str, np.ndarray]) -> None:
    write_npz(folder / "per_user.npz", **per_user)
    result = {"schema_version": SCHEMA_VERSION, **result,
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_json(folder / "result.json", result)


def method_labels(names_and_hashes) -> list[str]:
    """Report labels for (method name, params hash) pairs: the name, or name[hash] where one name has several
    configurations, so that two configurations are never averaged together (leaderboard, significance, robustness)."""
    pairs = list(names_and_hashes)
    hashes: dict[str, set] = {}
    for name, h in pairs:
        hashes.setdefault(name, set()).add(h)
    return [name if len(hashes[name]) == 1 else f"{name}[{h}]" for name, h in pairs]


def iter_results(root: Path, dataset: str | None = None) -> Iterator[tuple[Path, dict]]:
    base = Path(root) / dataset if dataset else Path(root)
    for path in sorted(base.rglob("result.json")):
        try:
            yield path.parent, read_json(path)
        except ValueError:
            continue


def recompute_metrics(folder: Path) -> dict:
    """Recompute every metric from the per-user file alone (what a reader of the results can do)."""
    from bench.evaluate import evaluate_full, evaluate_sampled
    from bench.io import load_npz
    z = load_npz(Path(folder) / "per_user.npz")
    if "scores" in z:
        return evaluate_sampled(z["scores"], z["candidates"] == z["target"][:, None]).metrics
    return evaluate_full(z["rank"], z["n_neg"], z["gauc"]).metrics
