"""The one place where RecBole 1.2.1 is made to work with current packages. Each fix has a test in
tests/test_compat.py. Version pins that go with these shims are in pyproject.toml.

- numpy 2 removed np.float_/np.complex_/np.unicode_ (RecBole's Config) and np.bool8 (ray.tune, imported by
  recbole.quick_start): restore the aliases.
- scipy removed dok_matrix._update, used by LightGCN/NGCF/...: restore it as a bulk dict update.
- torch >= 2.6 loads weights-only by default and RecBole's own checkpoints pickle its Config: the harness never
  loads RecBole checkpoints; it keeps the best state in memory and saves plain state_dicts (weights-only loadable).
  Weights-only loading is never switched off globally.
- pandas 3 (copy-on-write) silently breaks RecBole's fillna(inplace=True) and token_seq remapping: pinned < 3.
- Config() parses sys.argv and sets CUDA_VISIBLE_DEVICES; Trainer() opens a TensorBoard writer under ./:
  `recbole_sandbox()` hides argv, restores the environment and swaps in a no-op writer.
- recbole.utils imports torch.utils.tensorboard, which needs the `tensorboard` package (with protobuf, grpcio...)
  only to be imported, since the writer is swapped out: where it is not installed (a lent GPU machine), a module
  holding the no-op writer stands in for torch.utils.tensorboard.
- recbole/model/sequential_recommender/sine.py calls torch.autograd.set_detect_anomaly(True) when it is imported, and
  RecBole imports it with every sequential model: autograd anomaly mode stayed on for the rest of the process (every
  later method too), which records a stack trace per op and checks every backward output for NaN. Results are
  bit-identical without it, and training is 1.6-2.6x faster (benchmarks/anomaly_mode.py): apply() imports the
  sequential models once and puts anomaly mode back; the sandbox restores the caller's setting when it exits.
"""
from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

_APPLIED = False


def _numpy_aliases() -> None:
    # bool8: ray.tune (imported by recbole.quick_start) still names it
    for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_), ("bool8", np.bool_)):
        if not hasattr(np, old):
            setattr(np, old, new)


def _scipy_dok_update() -> None:
    from scipy.sparse import dok_matrix
    if not hasattr(dok_matrix, "_update"):
        def _update(self, data):
            # RecBole passes {(row, col): value}; newer scipy keeps entries in self._dict
            self._dict.update(data)
        dok_matrix._update = _update


def _pandas_check() -> None:
    import pandas as pd
    if int(pd.__version__.split(".")[0]) >= 3:
        from bench.errors import BenchError
        raise BenchError(f"pandas {pd.__version__} breaks RecBole 1.2.1 silently (copy-on-write); install pandas<3")


class _NullWriter:
    """Stands in for RecBole's TensorBoard SummaryWriter, which would write ./log_tensorboard."""
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _tensorboard_optional() -> None:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "tensorboard":
            raise
        import types
        stub = types.ModuleType("torch.utils.tensorboard")
        stub.SummaryWriter = _NullWriter
        stub.__doc__ = "bench.compat: no tensorboard installed; RecBole's writer is a no-op in the harness anyway"
        sys.modules["torch.utils.tensorboard"] = stub


def _sequential_models_imported() -> None:
    """Import RecBole's sequential models once (sine.py switches anomaly mode on) and switch it back."""
    import torch
    before = torch.is_anomaly_enabled()
    import recbole.model.sequential_recommender  # noqa: F401
    torch.autograd.set_detect_anomaly(before)


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    _numpy_aliases()
    _scipy_dok_update()
    _pandas_check()
    _tensorboard_optional()
    _sequential_models_imported()
    _APPLIED = True


@contextlib.contextmanager
def recbole_sandbox():
    """Contain RecBole's side effects: argv parsing, CUDA_VISIBLE_DEVICES, TensorBoard files, root logger, autograd
    anomaly mode."""
    apply()
    import logging
    import warnings
    import recbole.trainer.trainer as rb_trainer
    import torch
    saved_anomaly = torch.is_anomaly_enabled()
    saved_argv = sys.argv
    saved_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    saved_tb = rb_trainer.get_tensorboard
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    sys.argv = sys.argv[:1]
    rb_trainer.get_tensorboard = lambda logger: _NullWriter()
    try:
        with warnings.catch_warnings():
            # RecBole's own deprecation noise (pandas chained fillna, torch.cuda.amp) on every run
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
            warnings.filterwarnings("ignore", category=UserWarning, module=r"recbole\.")
            yield
    finally:
        sys.argv = saved_argv
        torch.autograd.set_detect_anomaly(saved_anomaly)
        rb_trainer.get_tensorboard = saved_tb
        if saved_cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved_cuda
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
