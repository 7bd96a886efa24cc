"""What a method sees while it trains: every sequence without its test item. The test target never enters fit()."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bench.data.candidates import Candidates
from bench.data.prepare import SeqDataset
from bench.errors import BenchError


@dataclass
class FitData:
    name: str
    fingerprint: str
    user_tokens: list[str]
    item_tokens: list[str]
    item_text: list[str]
    item_attrs: dict
    category: str
    known: list[np.ndarray]  # per user: training items + the validation target (the test target is cut off)
    valid_candidates: Candidates | None = None
    seed: int = 0
    log: Callable[[str], None] = field(default=lambda msg: None, repr=False)
    # where a long fit may keep epoch checkpoints, and what they must match (bench.resume); None: no resume
    resume_dir: Path | None = None
    resume_key: str | None = None

    @classmethod
    def from_dataset(cls, ds: SeqDataset, valid_candidates: Candidates | None = None, seed: int = 0,
                     log: Callable[[str], None] | None = None) -> "FitData":
        return cls(name=ds.name, fingerprint=ds.fingerprint, user_tokens=ds.user_tokens, item_tokens=ds.item_tokens,
                   item_text=ds.item_text, item_attrs=ds.item_attrs, category=ds.category,
                   known=[s[:-1] for s in ds.seqs], valid_candidates=valid_candidates, seed=seed,
                   log=log or (lambda msg: None))

    @property
    def n_users(self) -> int:
        return len(self.user_tokens)

    @property
    def n_items(self) -> int:
        return len(self.item_tokens)

    def train_seq(self, user: int) -> np.ndarray:
        return self.known[user][:-1]

    @property
    def valid_target(self) -> np.ndarray:
        return np.array([k[-1] for k in self.known], dtype=np.int64)

    def history(self, user: int, split: str) -> np.ndarray:
        """Items before the target: for validation the training items, for test also the validation item."""
        if split == "test":
            return self.known[user]
        if split == "valid":
            return self.known[user][:-1]
        raise BenchError(f"split {split!r} is not 'valid' or 'test'")

    def train_interactions(self) -> tuple[np.ndarray, np.ndarray]:
        users = np.repeat(np.arange(self.n_users), [len(k) - 1 for k in self.known])
        items = np.concatenate([k[:-1] for k in self.known])
        return users, items
