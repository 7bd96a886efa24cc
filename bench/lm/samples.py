"""Training groups for yes/no LLM recommenders: a history, its true next item and negatives, from training sequences only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.errors import MethodError


@dataclass
class TrainGroup:
    """One training history with its true next item (label 1) and `negatives` items the user never touched
    (label 0): scored together, they share the prompt prefix."""
    user: int
    history: np.ndarray
    items: np.ndarray
    labels: np.ndarray


def make_groups(data, n: int, history_len: int, negatives: int, rng: np.random.Generator,
                min_history: int = 3) -> list[TrainGroup]:
    """n groups from training sequences only: a user, a position t with >= min_history earlier items, the item at
    t as the positive and `negatives` uniform negatives outside everything the user interacted with."""
    users = [u for u in range(data.n_users) if len(data.train_seq(u)) > min_history]
    if not users:
        raise MethodError(f"no user has the {min_history + 1} training items a sample needs")
    out = []
    for u in rng.choice(users, size=max(1, n), replace=True):
        seq = data.train_seq(u)
        t = int(rng.integers(min_history, len(seq)))
        seen = set(data.known[u].tolist())
        negs: list[int] = []
        while len(negs) < negatives:
            c = int(rng.integers(data.n_items))
            if c not in seen and c not in negs:
                negs.append(c)
        out.append(TrainGroup(int(u), seq[max(0, t - history_len):t], np.array([int(seq[t]), *negs]),
                              np.array([1.0] + [0.0] * negatives, dtype=np.float32)))
    return out
