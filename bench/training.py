"""Early-stopping bookkeeping shared by every training loop in the harness (RecBole adapter, LLM methods): the best
validation value and a copy of the state that reached it, patience, and the wall-clock budget. Each loop keeps its
own epoch structure; this keeps the rules identical across methods.

Budgets. Profiles fix the amount of work (epochs, steps, samples) so that a result does not depend on machine load.
`max_minutes` is only a safety stop: when it ends training the result is not reproducible, and the runner records
`training.budget_stopped: true` (leaderboards mark such cells). A method reports a budget stop by any of:
  - `BestOnValidation.out_of_time()` / `stop_reason()` returning True / "max_minutes" (recorded automatically),
  - `report_budget_stop(what)` for loops with their own timer,
  - `fit_info_` containing `"stopped_by": "max_minutes"` or `"budget_stopped": True` at any depth.

Progress. `progress(total, description)` is a context manager yielding `advance(n=1)`: a training loop calls it once
per batch; the command line shows a bar per epoch (nothing is shown outside the command line).
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import math
import time
from typing import Any, Callable, Iterator

BUDGET_STOP = "max_minutes"   # the stop reason that means "the wall-clock safety stop ended training"

# per-cell records, installed by the runner (a context variable: threads and Ray workers each get their own)
_budget_stops: contextvars.ContextVar[list | None] = contextvars.ContextVar("budget_stops", default=None)
_progress_sink: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("progress_sink", default=None)


def report_budget_stop(what: str = "training") -> None:
    """Record that the wall-clock safety stop ended `what` (a stage name) early; a no-op outside a cell."""
    stops = _budget_stops.get()
    if stops is not None and what not in stops:
        stops.append(what)


@contextlib.contextmanager
def recording_budget_stops() -> Iterator[list[str]]:
    """The runner wraps a fit in this; the list collects every budget stop reported during it."""
    stops: list[str] = []
    token = _budget_stops.set(stops)
    try:
        yield stops
    finally:
        _budget_stops.reset(token)


def budget_stopped(fit_info: Any, reported: list[str] | tuple = ()) -> bool:
    """Whether a fit was ended by the wall-clock safety stop: reported through this module, or said in fit_info_."""
    if reported:
        return True
    if isinstance(fit_info, dict):
        if fit_info.get("budget_stopped") is True or fit_info.get("stopped_by") == BUDGET_STOP:
            return True
        return any(budget_stopped(v) for v in fit_info.values())
    if isinstance(fit_info, (list, tuple)):
        return any(budget_stopped(v) for v in fit_info)
    return False


@contextlib.contextmanager
def progress(total: int | None, description: str = "batches") -> Iterator[Callable[[int], None]]:
    """A progress bar for one epoch (or stage) of `total` steps; yields advance(n=1). Silent unless the command
    line installed a sink with `showing_progress`."""
    sink = _progress_sink.get()
    if sink is None:
        yield lambda n=1: None
        return
    with sink(total, description) as advance:
        yield advance


@contextlib.contextmanager
def showing_progress(sink: Callable) -> Iterator[None]:
    """Install `sink(total, description)`, a context manager yielding advance(n), for the duration of a run."""
    token = _progress_sink.set(sink)
    try:
        yield
    finally:
        _progress_sink.reset(token)


class CountedBatches:
    """Wraps a data loader so that iterating it advances a progress bar once per batch; everything else (len,
    attributes such as `shuffle` or `sampler`) goes to the loader."""

    def __init__(self, loader, advance: Callable[[int], None]):
        self._loader, self._advance = loader, advance

    def __iter__(self):
        for batch in self._loader:
            yield batch
            self._advance(1)

    def __len__(self) -> int:
        return len(self._loader)

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class BestOnValidation:
    def __init__(self, module, patience: int | None = None, max_minutes: float | None = None):
        self.module, self.patience, self.max_minutes = module, patience, max_minutes
        self.best, self.best_epoch, self.best_state, self.wait = -math.inf, -1, None, 0
        self.budget_stopped = False  # True once the wall-clock safety stop fired
        self.t0 = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    def out_of_time(self) -> bool:
        """True once the wall-clock safety stop is crossed; also records the budget stop for the runner."""
        late = self.max_minutes is not None and self.elapsed_s > 60 * self.max_minutes
        if late and not self.budget_stopped:
            self.budget_stopped = True
            report_budget_stop()
        return late

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
        return BUDGET_STOP if self.out_of_time() else None

    def state(self) -> dict[str, Any]:
        """What an epoch checkpoint keeps of the early stopper (bench.resume)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state,
                "budget_stopped": self.budget_stopped, "elapsed_s": self.elapsed_s}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from `state()`: the safety stop keeps counting the minutes already spent."""
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_state, self.budget_stopped = state["best_state"], state["budget_stopped"]
        self.t0 = time.perf_counter() - state["elapsed_s"]

    def restore(self) -> None:
        """Load the best state back (no-op when no validation ran)."""
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
