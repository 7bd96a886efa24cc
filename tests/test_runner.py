"""Runs, the results store, resume, and recomputation of every metric from the per-user file."""
import numpy as np
import pytest

from bench.io import read_json
from bench.results import Protocol, recompute_metrics
from bench.runner import Cell, run_cell

SCHEMA_KEYS = {"schema_version", "dataset", "method", "seed", "protocol", "metrics", "n_users", "training", "timings",
               "environment", "created"}
METRICS = {"auc", "gauc", "hr@1", "hr@5", "hr@10", "ndcg@1", "ndcg@5", "ndcg@10", "mrr"}


@pytest.mark.parametrize("protocol", [Protocol(), Protocol("sampled", "popularity", 20), Protocol("full")])
def test_result_schema_and_recompute(tmp_path, tiny_name, protocol):
    [(status, result, folder)] = run_cell(Cell(tiny_name, "pop", 0, (protocol,)), tmp_path, log=lambda m: None)
    assert status == "done"
    on_disk = read_json(folder / "result.json")
    assert SCHEMA_KEYS <= set(on_disk) and set(on_disk["metrics"]) == METRICS
    assert on_disk["protocol"]["mode"] == protocol.mode and on_disk["protocol"]["seed"] == 0
    assert on_disk["environment"]["packages"]["recbole"] and "git" in on_disk["environment"]
    assert on_disk["n_users"] == on_disk["dataset"]["stats"]["users"]
    again = recompute_metrics(folder)
    for k in METRICS:
        expected = on_disk["metrics"][k]
        assert again[k] is None if expected is None else again[k] == pytest.approx(expected, abs=1e-12), k
    if protocol.mode == "sampled":
        assert on_disk["protocol"]["n_negatives"] == protocol.n_negatives
        z = np.load(folder / "per_user.npz")
        assert z["candidates"].shape == (on_disk["n_users"], protocol.n_negatives + 1)
        assert (tmp_path / on_disk["protocol"]["candidates_file"]).is_file()


def test_every_method_reads_the_same_candidates(tmp_path, tiny_name):
    [(_, _, a)] = run_cell(Cell(tiny_name, "pop", 0), tmp_path, log=lambda m: None)
    [(_, _, b)] = run_cell(Cell(tiny_name, "random", 0), tmp_path, log=lambda m: None)
    za, zb = np.load(a / "per_user.npz"), np.load(b / "per_user.npz")
    assert (za["candidates"] == zb["candidates"]).all()
    ra, rb = read_json(a / "result.json"), read_json(b / "result.json")
    assert ra["protocol"]["candidates_sha256"] == rb["protocol"]["candidates_sha256"]


def test_resume_skips_finished_and_survives_interruption(tmp_path, tiny_name, monkeypatch):
    [(status, _, folder)] = run_cell(Cell(tiny_name, "pop", 0), tmp_path, log=lambda m: None)
    before = (folder / "result.json").read_bytes()
    assert run_cell(Cell(tiny_name, "pop", 0), tmp_path, log=lambda m: None)[0][0] == "skipped"
    assert (folder / "result.json").read_bytes() == before

    from methods.random_scores import RandomScores
    def boom(self, data):
        raise KeyboardInterrupt
    monkeypatch.setattr(RandomScores, "fit", boom)
    with pytest.raises(KeyboardInterrupt):
        run_cell(Cell(tiny_name, "random", 0), tmp_path, log=lambda m: None)
    assert (folder / "result.json").read_bytes() == before, "a finished cell is never touched by a later failure"
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers
    assert not list((tmp_path / "ml-tiny").rglob("random/*/seed0/result.json"))


def test_default_benchmark_sanity_on_embedded_data(tmp_path):
    """random sits at chance and pop is clearly above it on MovieLens-100K (the Done-when of the core issue)."""
    r = run_cell(Cell("ml-100k", "random", 0), tmp_path, log=lambda m: None)[0][1]["metrics"]
    p = run_cell(Cell("ml-100k", "pop", 0), tmp_path, log=lambda m: None)[0][1]["metrics"]
    assert 0.45 <= r["auc"] <= 0.55 and abs(r["hr@10"] - 0.10) < 0.04
    assert p["auc"] > r["auc"] + 0.1 and p["hr@10"] > 2 * r["hr@10"]


def test_one_fit_serves_every_protocol(tmp_path, tiny_name, monkeypatch):
    from methods.pop import Pop
    fits = []
    real_fit = Pop.fit
    monkeypatch.setattr(Pop, "fit", lambda self, data: fits.append(1) or real_fit(self, data))
    protocols = (Protocol("full"), Protocol("sampled", "uniform", 99), Protocol("sampled", "popularity", 99))
    out = run_cell(Cell(tiny_name, "pop", 0, protocols), tmp_path, log=lambda m: None)
    assert [s for s, _, _ in out] == ["done"] * 3 and len(fits) == 1
    assert len({f for _, _, f in out}) == 3
    uni, pop = out[1][1]["metrics"], out[2][1]["metrics"]
    assert pop["hr@10"] < uni["hr@10"], "popularity-sampled negatives are harder for a popularity ranker"
    again = run_cell(Cell(tiny_name, "pop", 0, protocols), tmp_path, log=lambda m: None)
    assert [s for s, _, _ in again] == ["skipped"] * 3 and len(fits) == 1


def test_user_subsample_is_shared_and_recorded(tmp_path, tiny_name):
    protocol = Protocol("sampled", "uniform", 20, max_users=10)
    [(_, a, fa)] = run_cell(Cell(tiny_name, "pop", 0, (protocol,)), tmp_path, log=lambda m: None)
    [(_, b, fb)] = run_cell(Cell(tiny_name, "random", 0, (protocol,)), tmp_path, log=lambda m: None)
    assert a["n_users"] == b["n_users"] == 10 and a["protocol"]["max_users"] == 10
    assert fa.parts[-4] == "sampled-uniform-n20-u10"
    assert (np.load(fa / "per_user.npz")["users"] == np.load(fb / "per_user.npz")["users"]).all()
    full = Protocol("full", max_users=10)
    [(_, c, fc)] = run_cell(Cell(tiny_name, "pop", 0, (full,)), tmp_path, log=lambda m: None)
    assert (np.load(fc / "per_user.npz")["users"] == np.load(fa / "per_user.npz")["users"]).all()
    again = recompute_metrics(fc)
    assert c["metrics"]["auc"] is None and again["auc"] is None
    assert {k: v for k, v in again.items() if k != "auc"} == pytest.approx(
        {k: v for k, v in c["metrics"].items() if k != "auc"})
