"""Robustness suite: deterministic perturbations that never touch titles or answers; the runner and report."""
import numpy as np
import pytest

from bench.io import load_npz
from bench.lm.perturb import PLACEHOLDER, perturb, variants
from bench.lm.prompts import PromptStyle, fill, get_template
from bench.report.robustness import build, write
from bench.results import Protocol
from bench.runner import Cell, run_cell

from tests.tiny_lm import TINY_GAN, TINY_LM  # noqa: E402

TINY = {"ganprompt": dict(TINY_GAN, valid_users=0), "tallrec": dict(TINY_LM, valid_users=0)}


def test_bank_has_ten_held_out_templates_and_every_level():
    vs = variants()
    levels = {v.level for v in vs}
    assert {"seen", "template", "character", "word", "sentence", "format"} <= levels
    assert sum(v.level == "template" for v in vs) >= 10
    assert len({v.id for v in vs}) == len(vs)


@pytest.mark.parametrize("kind", ["typo", "charswap", "worddelete", "synonym", "append", "prepend"])
def test_perturbations_are_deterministic_and_keep_placeholders_and_answers(kind):
    base = get_template("seen-0")
    a, b = perturb(base, kind, seed=3), perturb(base, kind, seed=3)
    assert a.text == b.text and a.text != base.text
    assert PLACEHOLDER.findall(a.text) == PLACEHOLDER.findall(base.text)
    assert a.answer_cue == base.answer_cue and a.answers == base.answers
    titles = ["Lipstick Red Velvet", "Shampoo Extra Volume"]
    text = fill(a, PromptStyle(), titles, "Moisturizer Daily SPF")
    assert all(t in text for t in titles) and "Moisturizer Daily SPF" in text


def test_robustness_run_and_report(tmp_path, tiny_name):
    chosen = tuple(v for v in variants() if v.id in ("seen-0", "unseen-3", "unseen-7", "seen-0+typo", "seen-0+numbered"))
    protocol = Protocol("sampled", "uniform", 10, max_users=8)
    outs = {}
    for m in ("ganprompt", "tallrec"):
        out = outs[m] = run_cell(Cell(tiny_name, m, 0, (protocol,), overrides=dict(TINY[m]), variants=chosen), tmp_path,
                       log=lambda s: None)
        assert [s for s, _, _ in out] == ["done"] * len(chosen)
    again = run_cell(Cell(tiny_name, "tallrec", 0, (protocol,), overrides=dict(TINY["tallrec"]), variants=chosen), tmp_path,
                     log=lambda s: None)
    assert {s for s, _, _ in again} == {"skipped"}
    rep = build(tmp_path, tiny_name, protocol.tag, "ndcg@10", pair=("ganprompt", "tallrec"))
    assert set(rep.values.columns) == {"ganprompt", "tallrec"} and len(rep.values) == len(chosen)
    seen = rep.values.loc["seen-0", "tallrec"]
    worst = rep.values.loc[["unseen-3", "unseen-7"], "tallrec"].min()
    assert rep.summary.at["tallrec", "unseen templates worst"] == pytest.approx(worst)
    assert rep.summary.at["tallrec", "unseen templates PDR worst"] == pytest.approx(1 - worst / seen)
    assert set(rep.tests["variant"]) == set(rep.values.index) and (rep.tests["holm_p"] <= 1).all()
    paths = write(rep, tmp_path)
    assert all(p.is_file() for p in paths) and paths[2].stat().st_size > 1000
    # the leaderboard tree is not polluted by robustness cells
    assert not (tmp_path / tiny_name / protocol.tag).exists()
    # the main run of the same method and params loads the robustness run's saved fit: same model, same scores
    (status, res, folder), = run_cell(Cell(tiny_name, "ganprompt", 0, (protocol,), overrides=dict(TINY["ganprompt"])), tmp_path,
                                      log=lambda s: None)
    assert status == "done" and res["training"]["fit_reused_from"].startswith(f"{tiny_name}/fits/ganprompt/")
    assert res["timings"]["fit_s"] == outs["ganprompt"][0][1]["timings"]["fit_s"]
    assert res["answers"]["prompts"] == 8 * 11 and 0 <= res["answers"]["greedy_answer_valid_rate"] <= 1
    seen = outs["ganprompt"][[v.id for v in chosen].index("seen-0")][2]
    np.testing.assert_allclose(load_npz(folder / "per_user.npz")["scores"], load_npz(seen / "per_user.npz")["scores"],
                               atol=1e-6)
    # a second configuration of one method is labelled by its params hash, never averaged with the first
    other = run_cell(Cell(tiny_name, "tallrec", 0, (protocol,), overrides={**TINY["tallrec"], "lora_r": 4}, variants=chosen[:1]),
                     tmp_path, log=lambda s: None)
    labels = set(build(tmp_path, tiny_name, protocol.tag, "ndcg@10").values.columns)
    assert "ganprompt" in labels and {lab for lab in labels if lab.startswith("tallrec[")} == {
        f"tallrec[{outs['tallrec'][0][1]['method']['params_hash']}]", f"tallrec[{other[0][1]['method']['params_hash']}]"}
    # --force refits instead of loading
    (_, res2, _), = run_cell(Cell(tiny_name, "ganprompt", 0, (protocol,), overrides=dict(TINY["ganprompt"])), tmp_path,
                             force=True, log=lambda s: None)
    assert res2["training"]["fit_reused_from"] is None


def _fake_per_user(tmp_path, spec, n=40):
    """spec: {(method, variant): per-user values in [0, 1]} -> the per_user mapping the report reads: a compact
    per-user file per cell whose ranks follow the values (rank round(30 (1 - v)) of 100 candidates)."""
    from bench.results import write_compact
    out = {}
    for (m, v), values in spec.items():
        folder = tmp_path / m / v
        rank = np.rint(30 * (1 - np.clip(values, 0, 1))).astype(np.int64)
        write_compact(folder / "per_user.csv.gz", np.arange(n).astype(str), rank, np.full(n, 99), 1 - rank / 99)
        out[(m, v, 0)] = folder
    return out


def test_drop_test_finds_the_method_that_loses_less_and_not_a_copy(tmp_path):
    import pandas as pd
    from bench.report.robustness import _drop_tests, _pooled
    rng = np.random.default_rng(0)
    seen = rng.uniform(0.4, 0.8, 40)
    levels = pd.Series({"seen-0": "seen", "unseen-1": "template", "unseen-2": "template", "seen-0+typo": "character"})
    spec = {("g", "seen-0"): seen, ("t", "seen-0"): seen, ("c", "seen-0"): seen}
    for v in ("unseen-1", "unseen-2", "seen-0+typo"):
        spec[("g", v)] = seen - rng.uniform(0.0, 0.02, 40)   # nearly no drop
        spec[("t", v)] = seen - rng.uniform(0.2, 0.3, 40)    # a large drop
        spec[("c", v)] = spec[("g", v)]                      # an exact copy of g
    per_user = _fake_per_user(tmp_path, spec)
    pooled = _pooled(per_user, "mrr")
    out = _drop_tests(pooled, levels, ("g", "t"), "seen-0").set_index("group")
    assert list(out.index) == ["unseen templates", "perturbations"]
    assert (out["verdict"] == "g drops less").all() and (out["ci_high"] < 0).all()
    stored = {k: v for k, (_, v) in pooled.items()}   # the per-user MRR the compact files give
    assert out.at["unseen templates", "PDR t"] == pytest.approx(
        1 - np.mean([stored[("t", v)].mean() for v in ("unseen-1", "unseen-2")]) / stored[("t", "seen-0")].mean())
    same = _drop_tests(_pooled(per_user, "mrr"), levels, ("g", "c"), "seen-0")
    assert (same["verdict"] == "n.s.").all() and (same["pdr_diff"] == 0).all()
