"""An external method for llmrec-bench, kept outside the package: first-order item transitions ("users who had the
user's last item next had ..."), with training popularity to order the items the last item never led to.

Load it without editing the harness, either way:
    bench.py run --include examples/external_method --methods cooc,pop
    # or as an installed plugin: in your package's pyproject.toml
    #   [project.entry-points."llmrec_bench.methods"]
    #   cooc = "cooc:CoOccurrence"
and check it with `bench.py check-method cooc --include examples/external_method`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.method import Method


@dataclass
class CoOccurrenceParams:
    window: int = field(default=1, metadata={"help": "how many following items count as 'next' (1 = first-order)",
                                             "min": 1})
    last_items: int = field(default=1, metadata={"help": "the user's most recent items whose transitions are summed",
                                                 "min": 1})
    weighting: str = field(default="count", metadata={"help": "count, or log (log1p of the counts)",
                                                      "choices": ("count", "log")})


class CoOccurrence(Method):
    name = "cooc"
    kind = "baseline"
    description = "item-to-item transitions from the user's last items, popularity as tie-break (external plugin)"
    Params = CoOccurrenceParams
    supports_full = True
    profiles = {"quick": {}, "paper": {}}

    def fit(self, data) -> "CoOccurrence":
        from scipy.sparse import coo_matrix
        p = self.params
        rows, cols = [], []
        for u in range(data.n_users):
            seq = data.train_seq(u)
            for k in range(1, p.window + 1):
                rows.append(seq[:-k]), cols.append(seq[k:])
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        self.next_ = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(data.n_items, data.n_items)).tocsr()
        if p.weighting == "log":
            self.next_.data = np.log1p(self.next_.data)
        _, items = data.train_interactions()
        pop = np.bincount(items, minlength=data.n_items).astype(np.float64)
        self.tie_break_ = pop / (pop.max() + 1.0)  # < 1: never outweighs one observed transition
        self.data_ = data
        self.fit_info_ = {"transitions": int(len(rows)), "window": p.window}
        return self

    def score_full(self, users, split="test"):
        out = np.empty((len(users), self.data_.n_items))
        for r, u in enumerate(np.asarray(users)):
            last = self.data_.history(int(u), split)[-self.params.last_items:]
            out[r] = np.asarray(self.next_[last].sum(axis=0)).ravel() + self.tie_break_
        return out

    def score(self, users, candidates, split="test"):
        return np.take_along_axis(self.score_full(users, split), np.asarray(candidates), axis=1)
