"""Most-popular: item counts in the training interactions (validation and test targets never counted)."""
from __future__ import annotations

import numpy as np

from bench.method import Method


class Pop(Method):
    name = "pop"
    description = "item popularity from training interactions"
    supports_full = True

    def fit(self, data) -> "Pop":
        _, items = data.train_interactions()
        counts = np.bincount(items, minlength=data.n_items).astype(np.float64)
        # no tie-breaking jitter: equal counts stay ties, which the evaluator ranks pessimistically
        self.counts_ = counts
        return self

    def score(self, users, candidates, split="test"):
        return self.counts_[np.asarray(candidates)]

    def score_full(self, users, split="test"):
        return np.broadcast_to(self.counts_, (len(users), len(self.counts_))).copy()
