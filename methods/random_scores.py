"""Random scores: the floor every method must clear (AUC 0.5, HR@10 = 10 / #candidates in expectation)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.method import Method


@dataclass
class RandomParams:
    seed_offset: int = field(default=0, metadata={"help": "added to the run seed for the score draw"})


class RandomScores(Method):
    name = "random"
    description = "uniform random scores (sanity floor)"
    Params = RandomParams
    supports_full = True

    def fit(self, data) -> "RandomScores":
        self.n_items_ = data.n_items
        self.seed_ = data.seed + self.params.seed_offset
        return self

    def score_full(self, users, split="test"):
        # one generator per (seed, split, user), one score per item: batching and candidate order change nothing
        code = {"valid": 1, "test": 2}[split]
        return np.stack([np.random.default_rng([self.seed_, code, int(u)]).random(self.n_items_) for u in users])

    def score(self, users, candidates, split="test"):
        return np.take_along_axis(self.score_full(users, split), np.asarray(candidates), axis=1)
