"""Training samples for yes/no LLM recommenders: (history, candidate, label) from training sequences only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.errors import MethodError


@dataclass
class Sample:
    user: int
    history: np.ndarray
    item: int
    label: float


def make_samples(data, n: int, history_len: int, rng: np.random.Generator, min_history: int = 3) -> list[Sample]:
    """n samples, half positive (the true next item after at least `min_history` earlier items), half negative
    (an item the user never interacted with, same history)."""
    users = [u for u in range(data.n_users) if len(data.train_seq(u)) > min_history]
    if not users:
        raise MethodError(f"no user has the {min_history + 1} training items a sample needs")
    out = []
    for u in rng.choice(users, size=max(1, n // 2), replace=True):
        seq = data.train_seq(u)
        t = int(rng.integers(min_history, len(seq)))
        hist = seq[max(0, t - history_len):t]
        seen = set(data.known[u].tolist())
        neg = int(rng.integers(data.n_items))
        while neg in seen:
            neg = int(rng.integers(data.n_items))
        out += [Sample(int(u), hist, int(seq[t]), 1.0), Sample(int(u), hist, neg, 0.0)]
    return out
