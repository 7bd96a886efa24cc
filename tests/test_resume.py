"""Epoch checkpoints (bench.resume): an interrupted RecBole fit continues from its last finished epoch and ends
exactly where an uninterrupted fit ends; a checkpoint left by other code is never continued."""
import numpy as np
import pytest

import bench.resume as resume
from bench.data.candidates import draw
from bench.conformance import tiny_recipe
from bench.data.prepare import load_dataset
from bench.data.view import FitData
from bench.method import get_method

TINY = {"epochs": 3, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "MAX_ITEM_LIST_LENGTH": 20,
        "train_batch_size": 256, "patience": 5}


class Interrupted(Exception):
    pass


def _data(tiny_ds, folder, key="k", negatives=30):
    valid = draw(tiny_ds, "valid", negatives, "uniform", 0)
    data = FitData.from_dataset(tiny_ds, valid_candidates=valid, seed=0)
    data.resume_dir, data.resume_key = folder, key
    return data


def _interrupt_after(monkeypatch, saves: int):
    """Let `saves` checkpoints be written, then fail as a killed session would, inside the next epoch."""
    real, count = resume.EpochCheckpoint.save, [0]

    def save(self, state, epochs_done):
        real(self, state, epochs_done)
        count[0] += 1
        if count[0] == saves:
            raise Interrupted
    monkeypatch.setattr(resume.EpochCheckpoint, "save", save)


def test_resumed_fit_equals_an_uninterrupted_one(tiny_ds, tmp_path, monkeypatch):
    test = draw(tiny_ds, "test", 30, "uniform", 0)
    whole = get_method("sasrec")(**TINY).fit(_data(tiny_ds, tmp_path / "a"))
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(Interrupted):
            get_method("sasrec")(**TINY).fit(_data(tiny_ds, tmp_path / "b"))
    assert (tmp_path / "b" / "train" / resume.CHECKPOINT_FILE).is_file()
    resumed = get_method("sasrec")(**TINY).fit(_data(tiny_ds, tmp_path / "b"))
    assert resumed.fit_info_["resumed"] == [{"stage": "train", "from_epoch": 1}]
    assert whole.fit_info_["resumed"] == []
    strip = [{k: v for k, v in h.items() if k != "train_s"} for h in whole.fit_info_["history"]]
    assert [{k: v for k, v in h.items() if k != "train_s"} for h in resumed.fit_info_["history"]] == strip
    assert resumed.fit_info_["best_epoch"] == whole.fit_info_["best_epoch"]
    np.testing.assert_array_equal(resumed.score(test.users, test.items), whole.score(test.users, test.items))


def test_a_checkpoint_of_other_code_is_not_continued(tiny_ds, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(Interrupted):
            get_method("sasrec")(**{**TINY, "epochs": 2}).fit(_data(tiny_ds, tmp_path, key="old-commit"))
    lines = []
    data = _data(tiny_ds, tmp_path, key="new-commit")
    data.log = lines.append
    m = get_method("sasrec")(**{**TINY, "epochs": 2}).fit(data)
    assert m.fit_info_["resumed"] == [] and m.fit_info_["epochs_run"] == 2
    assert any("left by other code" in line for line in lines)


def test_resume_key_needs_a_known_commit():
    git = {"commit": "abc", "dirty": False, "diff_sha256": None}
    key = resume.resume_key("fp", {"epochs": 3}, 0, git)
    assert key and key != resume.resume_key("fp", {"epochs": 3}, 0, {**git, "dirty": True, "diff_sha256": "d"})
    assert key != resume.resume_key("fp", {"epochs": 4}, 0, git)
    assert resume.resume_key("fp", {"epochs": 3}, 0, {"commit": None}) is None


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    import random

    import torch
    g = torch.Generator().manual_seed(3)
    state = resume.rng_state([g])
    torch.save(state, tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    resume.set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True), [g])
    assert (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item()) == expected


def test_s3rec_resumes_inside_pretraining(tmp_path, monkeypatch):
    # fine-tuning resumes through the same loop as sasrec above; this covers S3Rec's own pre-training loop, on a
    # smaller slice (its pre-training rebuilds every sequence in Python)
    tiny_ds = load_dataset(tiny_recipe(0.02, "ml-tiny-s3rec"))
    params = {"epochs": 1, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "MAX_ITEM_LIST_LENGTH": 20,
              "train_batch_size": 256, "patience": 5, "pretrain_epochs": 2}
    test = draw(tiny_ds, "test", 10, "uniform", 0)
    whole = get_method("s3rec")(**params).fit(_data(tiny_ds, tmp_path / "a", negatives=10))
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(Interrupted):
            get_method("s3rec")(**params).fit(_data(tiny_ds, tmp_path / "b", negatives=10))
    resumed = get_method("s3rec")(**params).fit(_data(tiny_ds, tmp_path / "b", negatives=10))
    assert resumed.fit_info_["resumed"][0] == {"stage": "pretrain", "from_epoch": 1}
    assert resumed.fit_info_["pretrain"]["losses"] == whole.fit_info_["pretrain"]["losses"]
    np.testing.assert_array_equal(resumed.score(test.users, test.items), whole.score(test.users, test.items))


def test_runner_resumes_a_killed_cell_and_clears_its_checkpoints(tmp_path, tiny_name, monkeypatch):
    from bench.executors import grid_status
    from bench.runner import Cell, run_cell
    cell = Cell(tiny_name, "sasrec", 0, overrides={**TINY, "epochs": 2})
    monkeypatch.setattr("bench.runner.git_state", lambda: {"commit": "c0ffee", "dirty": False, "diff_sha256": None})
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(Interrupted):
            run_cell(cell, tmp_path, log=lambda msg: None)
    [row] = [r for r in grid_status(tmp_path) if r["state"] == "resumable"]
    assert row["cell"].startswith(f"{tiny_name}/fits/sasrec/") and row["cell"].endswith("/seed0")
    assert row["detail"].startswith("train: 1 epochs saved")
    import torch
    [ckpt] = tmp_path.rglob(resume.CHECKPOINT_FILE)
    first_run_s = torch.load(ckpt, weights_only=True)["fit_s"]
    [(status, result, _)] = run_cell(cell, tmp_path, log=lambda msg: None)
    assert status == "done" and result["training"]["resumed"] == [{"stage": "train", "from_epoch": 1}]
    assert first_run_s > 0 and result["timings"]["fit_s_earlier_runs"] == pytest.approx(first_run_s)
    assert result["timings"]["fit_s"] > first_run_s, "the whole fit's time: the kept epoch's run and this one"
    assert result["training"]["epochs_run"] == 2
    assert not list(tmp_path.rglob(resume.CHECKPOINT_FILE)), "a finished fit leaves no checkpoint behind"


def test_a_later_protocol_loads_the_saved_recbole_fit_instead_of_training_again(tmp_path, tiny_name, monkeypatch):
    # seen on sports-5core: s3rec's sampled cell was written, then the session ended while full ranking was scored,
    # and the full cell trained the same 1.5-hour fit again
    from bench.protocol import Protocol
    from bench.runner import Cell, run_cell
    monkeypatch.setattr("bench.runner.git_state", lambda: {"commit": "c0ffee", "dirty": False, "diff_sha256": None})
    overrides = {**TINY, "epochs": 2}
    [(_, first, _)] = run_cell(Cell(tiny_name, "sasrec", 0, (Protocol(),), overrides=overrides), tmp_path,
                               log=lambda msg: None)
    assert first["training"]["fit_reused_from"] is None

    def fitted_again(self, data):
        raise AssertionError("fitted again")
    monkeypatch.setattr(get_method("sasrec"), "fit", fitted_again)
    [(status, second, _)] = run_cell(Cell(tiny_name, "sasrec", 0, (Protocol.from_tag("full"),), overrides=overrides),
                                     tmp_path, log=lambda msg: None)
    assert status == "done" and second["training"]["fit_reused_from"].startswith(f"{tiny_name}/fits/sasrec/")
    assert second["timings"]["fit_s"] == first["timings"]["fit_s"]
    assert second["training"]["best_epoch"] == first["training"]["best_epoch"], "the saved fit's record is kept"
