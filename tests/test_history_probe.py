"""The history-swap probe (bench.probe): nobody keeps their own history, a method that ignores histories does not
move, one that reads them does, and the own-history pass is checked against the committed cell."""
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError, MethodError
from bench.probe import SwappedHistories, derangement, rank_correlation, run, write
from bench.protocol import Protocol
from bench.runner import Cell, run_cell

PROTOCOL = Protocol("sampled", "uniform", 19, 40)


@pytest.mark.parametrize("n", [2, 3, 50])
def test_derangement_leaves_nobody_with_their_own_history(n):
    donor = derangement(n, seed=1)
    assert sorted(donor) == list(range(n)) and (donor != np.arange(n)).all()


def test_swapped_view_reads_the_donors_history_and_passes_the_rest_through(tiny_ds):
    from bench.data.view import FitData
    data = FitData.from_dataset(tiny_ds)
    view = SwappedHistories(data, {0: 1})
    assert (view.history(0, "test") == data.history(1, "test")).all()
    assert (view.history(2, "valid") == data.history(2, "valid")).all()
    assert view.item_text is data.item_text and view.n_users == data.n_users


def test_rank_correlation_is_one_for_the_same_order_and_minus_one_reversed():
    a = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    assert rank_correlation(a, a * 10) == pytest.approx([1.0, 1.0])
    assert rank_correlation(a, -a) == pytest.approx([-1.0, -1.0])
    assert np.isnan(rank_correlation(np.ones((1, 3)), a[:1])).all()


def test_mf_ignores_the_history_and_its_committed_cell_is_reproduced(tmp_path, tiny_name):
    # BPR scores from user and item embeddings: it keeps a data view but never reads a history from it
    overrides = {"epochs": 1}
    run_cell(Cell(tiny_name, "bpr", 0, (PROTOCOL,), overrides=overrides), tmp_path, log=lambda m: None)
    probe = run(tmp_path, tiny_name, "bpr", protocol=PROTOCOL.tag, users=30, overrides=overrides,
                log=lambda m: None)
    r = probe.record
    assert r["users"] == 30 and r["identical_scores"]
    assert r["own"] == r["swapped"] and r["tests_swapped_minus_own"]["gauc"]["wilcoxon_p"] == 1.0
    assert r["committed_cell"]["reproduces"] and r["committed_cell"]["max_abs_gauc_diff"] <= 1e-12
    # the probe loaded the fit the cell saved, and the loaded fit reproduces the cell (above)
    fit = Path(r["fit_reused_from"])
    assert fit.parent.parent == tmp_path / tiny_name / "fits" / "bpr" and fit.name == "seed0"
    assert "no measurable use of the history" in probe.markdown
    # as another user entirely it reads that user's embedding: the user-id part is all there is
    a = r["above_chance_from"]["gauc"]
    assert r["whole_user_vs_swapped_max_abs"] > 0 and a["history"] == 0.0
    assert "it reads more of a user than the history" in probe.markdown
    assert a["candidates"] + a["user_features"] == pytest.approx(r["own"]["gauc"] - r["chance"]["gauc"])
    assert r["input_ablations"] == [] and "Input ablation" not in probe.markdown  # BPR declares none
    json_path, md_path = write(probe, tmp_path)
    assert json_path.parent == tmp_path / r["dataset"] / "probes" and md_path.read_text() == probe.markdown


def test_a_history_reader_moves_under_the_swap(tmp_path, tiny_name):
    overrides = {"encoder": "tiny-encoder"}
    probe = run(tmp_path, tiny_name, "textsim", protocol=PROTOCOL.tag, users=30, overrides=overrides,
                log=lambda m: None)
    r = probe.record
    assert not r["identical_scores"] and r["rank_correlation"]["mean"] < 0.99
    # textsim reads nothing of a user but the history: the whole-user swap scores as the history swap does
    assert r["whole_user_vs_swapped_max_abs"] == 0.0 and r["above_chance_from"]["gauc"]["user_features"] == 0.0
    assert r["whole_user"] == r["swapped"] and "user-id features +0.0000" in probe.markdown
    assert "reads nothing of a user but the history" in probe.markdown
    assert r["committed_cell"]["file"] is None  # no cell was run: nothing to check against, and it says so
    assert sorted(r["donor_tokens"]) == sorted(r["user_tokens"])
    assert all(d != u for d, u in zip(r["donor_tokens"], r["user_tokens"]))


def test_bad_requests_are_one_line_errors(tmp_path, tiny_name):
    with pytest.raises(MethodError, match="keeps no data view"):
        run(tmp_path, tiny_name, "pop", protocol=PROTOCOL.tag, users=10, log=lambda m: None)
    with pytest.raises(BenchError, match="sampled protocol"):
        run(tmp_path, tiny_name, "pop", protocol="full", log=lambda m: None)
    with pytest.raises(BenchError, match="at least 2 users"):
        run(tmp_path, tiny_name, "pop", protocol=PROTOCOL.tag, users=1, log=lambda m: None)


def test_an_lm_recommender_reads_nothing_of_a_user_but_the_history(tmp_path, tiny_name):
    # its prompts are built from the history alone, and packing scores them alike in any batch order
    from bench.probe import ROUNDING
    from tests.tiny_lm import TINY_LM
    probe = run(tmp_path, tiny_name, "ganprompt-plain", protocol=PROTOCOL.tag, users=20,
                overrides=dict(TINY_LM, valid_users=0), log=lambda m: None)
    r = probe.record
    assert not r["identical_scores"] and r["whole_user_vs_swapped_max_abs"] <= ROUNDING
    assert "reads nothing of a user but the history" in probe.markdown


def test_collm_is_also_scored_with_its_collaborative_slots_off(tmp_path, tiny_name):
    from tests.tiny_lm import TINY_LM
    overrides = dict(TINY_LM, cf_epochs=2, cf_embedding_size=8, mlp_hidden=16, max_length=96, valid_users=0)
    probe = run(tmp_path, tiny_name, "collm", protocol=PROTOCOL.tag, users=20, overrides=overrides,
                log=lambda m: None)
    r = probe.record
    (a,) = r["input_ablations"]
    assert a["name"] == "collaborative-slots" and set(a["own"]) == set(a["whole_user"]) == {"gauc", "ndcg@10"}
    for k in ("gauc", "ndcg@10"):  # the candidates' prior splits exactly into through the slots + without them
        c = a["candidates_from"][k]
        assert c["through_it"] + c["without_it"] == pytest.approx(r["above_chance_from"][k]["candidates"])
        assert a["tests_off_minus_own"][k]["diff"] == pytest.approx(a["own"][k] - r["own"][k])
    assert "Input ablation `collaborative-slots`" in probe.markdown and "through collaborative-slots" in probe.markdown
    assert set(r["timings"]["input_ablations_score_s"]) == {"collaborative-slots"}
