"""One test per RecBole compatibility fix in bench/compat.py."""
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench import compat


def test_numpy_aliases_for_recbole_config():
    compat.apply()
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.bool8 is np.bool_
    with compat.recbole_sandbox():
        from recbole.config import Config  # touches np.float_ in compatibility_settings
        assert Config is not None


def test_scipy_dok_update_restored():
    compat.apply()
    import scipy.sparse as sp
    a = sp.dok_matrix((3, 3), dtype=np.float32)
    a._update({(0, 1): 1.0, (2, 0): 2.0})
    dense = a.toarray()
    assert dense[0, 1] == 1.0 and dense[2, 0] == 2.0 and dense.sum() == 3.0


def test_pandas_inplace_fillna_still_works():
    """RecBole relies on df[c].fillna(v, inplace=True) modifying df: true before pandas 3's copy-on-write."""
    df = pd.DataFrame({"a": [1.0, np.nan]})
    df["a"].fillna(value=0.0, inplace=True)
    assert df["a"].tolist() == [1.0, 0.0]
    assert int(pd.__version__.split(".")[0]) < 3


class Opaque:
    """Stands for RecBole's pickled Config inside its checkpoints."""


def test_weights_only_loading_stays_on(tmp_path):
    """The harness saves plain state dicts; they load with weights_only=True (never switched off globally)."""
    state = {"w": torch.ones(2)}
    torch.save(state, tmp_path / "s.pt")
    assert torch.equal(torch.load(tmp_path / "s.pt", weights_only=True)["w"], state["w"])

    torch.save({"cfg": Opaque()}, tmp_path / "bad.pt")
    with pytest.raises(Exception):
        torch.load(tmp_path / "bad.pt")  # default stays weights-only


def test_sandbox_hides_argv_and_restores_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["prog", "--epochs=7"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.chdir(tmp_path)
    with compat.recbole_sandbox():
        from recbole.config import Config
        cfg = Config(model="Pop", dataset="ml-100k", config_dict={"epochs": 3, "use_gpu": False, "data_path": str(tmp_path)})
        assert cfg["epochs"] == 3
        from recbole.trainer import trainer
        assert trainer.get_tensorboard(None).add_scalar("x", 1) is None
    assert sys.argv == ["prog", "--epochs=7"]
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not (tmp_path / "log_tensorboard").exists()


def test_recbole_imports_without_the_tensorboard_package(monkeypatch):
    """A lent GPU machine has no tensorboard: torch.utils.tensorboard then becomes the no-op writer's module."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)       # `import tensorboard` now fails as if absent
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    compat._tensorboard_optional()
    stub = sys.modules["torch.utils.tensorboard"]
    assert stub.SummaryWriter is compat._NullWriter
    writer = stub.SummaryWriter(log_dir="nowhere")
    assert writer.add_scalar("loss", 1.0, 0) is None and not os.path.exists("nowhere")
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard")
    # with the package present, nothing is replaced
    monkeypatch.setitem(sys.modules, "tensorboard", type(sys)("tensorboard"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", type(sys)("torch.utils.tensorboard"))
    compat._tensorboard_optional()
    assert not hasattr(sys.modules["torch.utils.tensorboard"], "SummaryWriter")


_ANOMALY_PROBE = """
import sys, torch
from bench.compat import recbole_sandbox
torch.autograd.set_detect_anomaly(sys.argv[1] == "on")
with recbole_sandbox():
    from recbole.utils import get_model
    get_model("SASRec")                                  # imports recbole's sine.py, which switches anomaly mode on
    inside = torch.is_anomaly_enabled()
print("sine" if "recbole.model.sequential_recommender.sine" in sys.modules else "no-sine", inside,
      torch.is_anomaly_enabled())
"""


@pytest.mark.parametrize("before", ["off", "on"])
def test_recbole_leaves_autograd_anomaly_mode_as_it_was(before):
    """RecBole's sine.py turns anomaly mode on at import (1.6-2.6x slower training for every later model in the
    process); the sandbox puts back the caller's setting, inside and after."""
    import subprocess
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _ANOMALY_PROBE, before], capture_output=True, text=True, check=True,
                         cwd=root)
    expected = str(before == "on")
    assert out.stdout.split() == ["sine", expected, expected]
