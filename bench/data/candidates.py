"""Candidate sets shared by every method: per user 1 positive + N negatives, drawn once per (dataset, seed, split,
sampler, N), saved, and reused. Negatives are never items the user interacted with (any split). The positive sits at a
random column so that a method cannot find it by position; `target` says which item it is."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.prepare import SeqDataset
from bench.errors import BenchError, DataFormatError
from bench.io import load_npz, write_npz
from bench.protocol import SAMPLERS

SPLITS = ("valid", "test")


@dataclass
class Candidates:
    split: str
    sampler: str
    n_negatives: int
    seed: int
    users: np.ndarray   # [U] user indices
    items: np.ndarray   # [U, 1+N] item indices, positive at a random column
    target: np.ndarray  # [U] the positive item of each user

    @property
    def labels(self) -> np.ndarray:
        return self.items == self.target[:, None]

    def subset(self, rows: np.ndarray) -> "Candidates":
        return Candidates(self.split, self.sampler, self.n_negatives, self.seed, self.users[rows], self.items[rows],
                          self.target[rows])


def targets_of(ds: SeqDataset, split: str) -> np.ndarray:
    """Leave-one-out: the test target is the last item, the validation target the second last."""
    pos = {"test": -1, "valid": -2}[split]
    return np.array([s[pos] for s in ds.seqs], dtype=np.int64)


def train_popularity(ds: SeqDataset) -> np.ndarray:
    """Item counts over training interactions only (validation and test targets excluded)."""
    return np.bincount(np.concatenate([s[:-2] for s in ds.seqs]), minlength=ds.n_items).astype(np.float64)


def popularity_signal(ds: SeqDataset) -> tuple[float, float, float]:
    """(mean training count of the test targets, mean training count of all the dataset's items, their ratio).
    "All items" are every item of the prepared set, those without a training interaction counted as 0 (so the mean
    is training interactions / #items). 1.0: the test targets are no more popular than an average item, so
    popularity-based methods (pop, popularity negatives) get no signal from this split."""
    pop = train_popularity(ds)
    target, everyone = float(pop[targets_of(ds, "test")].mean()), float(pop.mean())
    return target, everyone, target / everyone if everyone else float("nan")


def max_negatives(ds: SeqDataset) -> int:
    """The most negatives every user can get: items minus the largest number of distinct items one user touched."""
    return int(ds.n_items - max(len(np.unique(s)) for s in ds.seqs))


def check_negatives(ds: SeqDataset, n_negatives: int) -> None:
    allowed = max_negatives(ds)
    if n_negatives > allowed:
        raise BenchError(f"dataset {ds.name} has {ds.n_items} items and a user with {ds.n_items - allowed} of them, "
                         f"so at most {allowed} negatives per user; asked for {n_negatives} (lower --negatives)")


def draw(ds: SeqDataset, split: str, n_negatives: int, sampler: str, seed: int) -> Candidates:
    if split not in SPLITS:
        raise BenchError(f"split {split!r}; valid: {', '.join(SPLITS)}")
    if sampler not in SAMPLERS:
        raise BenchError(f"sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    rng = np.random.default_rng([seed, SPLITS.index(split), SAMPLERS.index(sampler), n_negatives])
    weights = None
    if sampler == "popularity":
        weights = train_popularity(ds) + 1.0  # +1: items unseen in training can still be drawn
        weights /= weights.sum()
    check_negatives(ds, n_negatives)
    target = targets_of(ds, split)
    out = np.empty((ds.n_users, n_negatives + 1), dtype=np.int64)
    for u, seq in enumerate(ds.seqs):
        seen = np.unique(seq)
        free = ds.n_items - len(seen)
        if free < n_negatives:
            raise BenchError(f"dataset {ds.name}: user {ds.user_tokens[u]} has only {free} unseen items, fewer than "
                             f"{n_negatives} negatives (lower --negatives)")
        negs = np.empty(0, dtype=np.int64)
        while len(negs) < n_negatives:  # rejection sampling; users see a small share of the catalogue
            draw_n = 2 * (n_negatives - len(negs)) + 8
            cand = rng.choice(ds.n_items, size=draw_n, p=weights)
            cand = cand[~np.isin(cand, seen)]
            cand = cand[~np.isin(cand, negs)]
            _, first = np.unique(cand, return_index=True)
            negs = np.concatenate([negs, cand[np.sort(first)]])[:n_negatives]
        row = np.concatenate([[target[u]], negs])
        out[u] = row[rng.permutation(n_negatives + 1)]
    return Candidates(split, sampler, n_negatives, seed, np.arange(ds.n_users), out, target)


def candidates_path(root: Path, ds: SeqDataset, split: str, sampler: str, n_negatives: int, seed: int) -> Path:
    return Path(root) / ds.name / "candidates" / f"{ds.fingerprint}-{split}-{sampler}-n{n_negatives}-seed{seed}.npz"


def get_candidates(root: Path, ds: SeqDataset, split: str, n_negatives: int, sampler: str, seed: int
                   ) -> tuple[Candidates, Path]:
    """Load the saved candidates, or draw and save them once. Every method of a run reads the same file."""
    path = candidates_path(root, ds, split, sampler, n_negatives, seed)
    if path.is_file():
        try:
            z = load_npz(path)
            fingerprint = str(z["fingerprint"])
        except (OSError, ValueError, KeyError) as exc:
            raise DataFormatError(f"{path}: cannot read the saved candidates ({type(exc).__name__}: {exc}); delete "
                                  "the file to draw them again".replace("\n", " ")) from None
        if fingerprint != ds.fingerprint:
            raise DataFormatError(f"{path}: drawn for dataset fingerprint {fingerprint}, not {ds.fingerprint}")
        return Candidates(split, sampler, n_negatives, seed, z["users"], z["items"], z["target"]), path
    cands = draw(ds, split, n_negatives, sampler, seed)
    write_npz(path, users=cands.users, items=cands.items, target=cands.target, fingerprint=np.array(ds.fingerprint))
    return cands, path
