"""Early-stopping bookkeeping shared by every training loop in the harness (RecBole adapter, LLM methods): the best
validation value and a copy of the state that reached it, patience, and the wall-clock budget. Each loop keeps its
own epoch structure; this keeps the rules identical across methods."""
from __future__ import annotations

import copy
import math
import time


class BestOnValidation:
    def __init__(self, module, patience: int | None = None, max_minutes: float | None = None):
        self.module, self.patience, self.max_minutes = module, patience, max_minutes
        self.best, self.best_epoch, self.best_state, self.wait = -math.inf, -1, None, 0
        self.t0 = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    def out_of_time(self) -> bool:
        return self.max_minutes is not None and self.elapsed_s > 60 * self.max_minutes

    def observe(self, epoch: int, value: float) -> bool:
        """Record one validation value (higher is better); keep the state when it strictly improves."""
        if value > self.best:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            self.best_state = copy.deepcopy(self.module.state_dict())
            return True
        self.wait += 1
        return False

    def patience_spent(self) -> bool:
        return self.patience is not None and self.wait >= self.patience

    def stop_reason(self) -> str | None:
        """Checked once per epoch: 'patience' or 'max_minutes' when training should stop, else None."""
        if self.patience_spent():
            return "patience"
        return "max_minutes" if self.out_of_time() else None

    def restore(self) -> None:
        """Load the best state back (no-op when no validation ran)."""
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
