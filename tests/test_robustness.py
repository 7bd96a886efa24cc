"""Robustness suite: deterministic perturbations that never touch titles or answers; the runner and report."""
import re

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


# ---- issue #13: chance-adjusted PDR, drop tests above chance only, CoLLM with slots, own templates, scale ----
def _fake_cells(root, tag, ranks: dict, n_candidates=20, dataset="ml-tiny"):
    """ranks: {(method, variant, level): per-user 0-based ranks of the positive} -> robustness cells (result.json and
    compact per-user file) that build() reads."""
    from bench.evaluate import per_user_from_ranks, summarise
    from bench.io import write_json
    from bench.results import write_compact
    for (m, v, level), rank in ranks.items():
        folder = root / dataset / "robustness" / tag / m / "h" / "seed0" / v
        n = len(rank)
        rank = np.asarray(rank, dtype=np.int64)
        n_neg = np.full(n, n_candidates - 1)
        gauc = 1 - rank / (n_candidates - 1)
        write_compact(folder / "per_user.csv.gz", np.arange(n).astype(str), rank, n_neg, gauc)
        write_json(folder / "result.json", {"method": {"name": m, "params_hash": "h"}, "seed": 0,
                                            "protocol": {"prompt": {"variant": v, "level": level}},
                                            "metrics": summarise(per_user_from_ranks(rank, n_neg, gauc), 0.5)})


def _two_methods(tmp_path, n=300):
    """`good` ranks the positive near the top under the seen template and drops under the unseen ones; `flat` ranks
    it uniformly at random under every template: at chance, it has nothing to lose."""
    rng = np.random.default_rng(0)
    tag = "sampled-uniform-n19-u300"
    ranks = {}
    for v, level in (("seen-0", "seen"), ("unseen-1", "template"), ("unseen-2", "template"),
                     ("seen-0+typo", "character")):
        ranks[("good", v, level)] = rng.integers(0, 4 if level == "seen" else 10, n)
        ranks[("flat", v, level)] = rng.integers(0, 20, n)
    _fake_cells(tmp_path, tag, ranks)
    return tag


def test_chance_adjusted_pdr_beside_the_plain_ratio_and_na_at_chance(tmp_path):
    from bench.evaluate import chance_metrics
    tag = _two_methods(tmp_path)
    rep = build(tmp_path, "ml-tiny", tag, "ndcg@10")
    floor = chance_metrics(20)["ndcg@10"]
    seen = rep.values.at["seen-0", "good"]
    unseen = rep.values.loc[["unseen-1", "unseen-2"], "good"]
    s = rep.summary.loc["good"]
    assert s["unseen templates PDR mean"] == pytest.approx((1 - unseen / seen).mean())
    assert s["unseen templates cPDR mean"] == pytest.approx(((seen - unseen) / (seen - floor)).mean())
    assert s["unseen templates cPDR worst"] == pytest.approx((seen - unseen.min()) / (seen - floor))
    # the chance-level method: its plain PDR is near 0 (it looks robust), its cPDR is undefined, with the reason
    assert abs(rep.summary.at["flat", "unseen templates PDR mean"]) < 0.2
    assert np.isnan(rep.summary.at["flat", "unseen templates cPDR mean"])
    assert rep.chance_checks.at["flat", "cpdr_reason"].startswith("cPDR n/a: seen ndcg@10")
    assert rep.chance_checks.at["good", "cpdr_reason"] is None
    text = rep.markdown()
    assert "| flat " in text and "n/a" in text.split("| flat ")[1].splitlines()[0]
    assert "flat: cPDR n/a: seen ndcg@10" in text and "not clearly above chance" in text
    # the chance level follows the candidate count: HR@10 of 20 candidates is 10/20 and a method at it is n/a too
    hr = build(tmp_path, "ml-tiny", tag, "hr@10")
    assert hr.chance_checks.at["good", "chance"] == pytest.approx(0.5) and hr.chance_checks.at["flat", "cpdr_reason"]


def test_drop_tests_run_only_above_chance_and_say_why_not(tmp_path):
    from bench.report.robustness import above_chance_p, margin_p
    rng = np.random.default_rng(1)
    assert above_chance_p(1 - rng.integers(0, 20, 300) / 19) >= 0.05   # random ranks: at chance
    assert above_chance_p(1 - rng.integers(0, 8, 300) / 19) < 0.05      # ranked high: above
    assert above_chance_p(np.full(10, 0.5)) == 1.0 and margin_p(np.full(10, 0.3), 0.2) == 0.0
    tag = _two_methods(tmp_path)
    rep = build(tmp_path, "ml-tiny", tag, "ndcg@10", pair=("good", "flat"))
    assert rep.chance_checks.at["good", "gauc_p"] < 0.05 and rep.chance_checks.at["flat", "gauc_p"] >= 0.05
    assert set(rep.method_drops["method"]) == {"good"}
    assert (rep.method_drops["verdict"] == "drops").all() and (rep.method_drops["ci_low"] > 0).all()
    assert rep.drop_tests is None and rep.tests is not None   # the level comparison per variant still runs
    text = rep.markdown()
    assert "Drop tests skipped for flat: the seen-template GAUC is not significantly above chance" in text
    assert "Drop test good vs flat skipped: flat not above chance" in text
    assert "flat: seen GAUC" in text and "Wilcoxon p =" in text
    paths = write(rep, tmp_path)
    assert any(p.name.endswith("-chance.csv") for p in paths) and any("method-drop" in p.name for p in paths)
    # both above chance: the pair's drop test runs
    _fake_cells(tmp_path, tag, {("good2", v, lv): np.random.default_rng(2).integers(0, 4 if lv == "seen" else 6, 300)
                                for v, lv in (("seen-0", "seen"), ("unseen-1", "template"), ("unseen-2", "template"),
                                              ("seen-0+typo", "character"))})
    both = build(tmp_path, "ml-tiny", tag, "ndcg@10", pair=("good", "good2"))
    assert both.drop_tests is not None and len(both.drop_tests) == 2 and not any("good2" in s for s in both.skipped)


def test_collm_trains_on_the_slot_bearing_seen_template_and_scores_the_same_prompt(tiny_ds):
    from bench.data.candidates import draw
    from bench.data.view import FitData
    from bench.method import get_method
    from methods.collm import ITEM_SLOT, USER_SLOT, with_slots
    from tests.tiny_lm import TINY_LM
    seen = get_template("seen-0")
    slotted = with_slots(seen)
    assert USER_SLOT in slotted.text and ITEM_SLOT in slotted.text and with_slots(slotted) == slotted
    assert with_slots(get_template("collm-0")) == get_template("collm-0")   # its own template keeps its wording
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)
    # what the robustness suite asks for: template = the seen template (no slots). Before, stage 2 failed ("does not
    # require grad"): no slot, so no gradient reached the mapper
    m = get_method("collm")(**{**TINY_LM, "cf_epochs": 2, "cf_embedding_size": 8, "mlp_hidden": 16, "max_length": 96,
                               "template": "seen-0", "valid_users": 0, "train_groups": 4, "epochs": 1,
                               "stage2_epochs": 1})
    m.fit(data)
    assert m.template_.text == slotted.text
    assert m.mapper_[-1].weight.abs().max().item() > 0, "the mapper trained: its zero start moved"
    trained = m.template_
    m.set_prompt(seen)   # the suite's seen variant is exactly the training prompt
    assert m.template_ == trained


def test_collm_is_in_the_suite_by_default_at_300_users_x_20_candidates():
    import inspect
    from bench import api
    from bench.cli import build_parser
    args = build_parser().parse_args(["robustness"])
    assert "collm" in args.methods.split(",") and args.users >= 300 and args.negatives + 1 >= 20
    sig = inspect.signature(api.robustness).parameters
    assert "collm" in sig["methods"].default and sig["users"].default >= 300 and sig["negatives"].default >= 19
    lowered = build_parser().parse_args(["robustness", "--users", "8", "--negatives", "4"])
    assert (lowered.users, lowered.negatives) == (8, 4)


def test_own_templates_join_the_bank_and_bad_files_fail_in_one_line(tmp_path, monkeypatch, capsys):
    import yaml
    from bench import cli
    from bench.errors import BenchError
    from bench.lm import prompts
    from bench.lm.perturb import add_held_out
    monkeypatch.setattr(prompts, "_PLUGIN_FILES", [])   # registered for this test only
    good = tmp_path / "mine.yaml"
    entry = {"id": "mine-1", "kind": "recommendation", "tag": "unseen", "answer_cue": "\nanswer:",
             "text": "History: {purchase_history}\nNext: {target_item}?"}
    good.write_text(yaml.safe_dump([entry]))
    before = {v.id for v in variants()}
    assert add_held_out(good) == ["mine-1"]
    got = {v.id: v for v in variants()}
    assert set(got) - before == {"mine-1"} and got["mine-1"].level == "template"
    bad = {
        "missing.yaml": (None, "cannot read the template file"),
        "broken.yaml": ("- id: x\n  text: [unclosed\n", "not valid YAML at line"),
        "notalist.yaml": ("id: x\n", "expected a list of templates"),
        "nokind.yaml": ([{k: v for k, v in entry.items() if k != "kind"} | {"id": "a"}], "template a lacks kind"),
        "extra.yaml": ([entry | {"id": "b", "colour": "red"}], "unknown key(s) colour"),
        "seen.yaml": ([entry | {"id": "c", "tag": "seen"}], "tag is 'seen', not 'unseen'"),
        "typo.yaml": ([entry | {"id": "d", "text": "{purchase_histroy} {target_item}"}], "no {purchase_history}"),
        "unknown.yaml": ([entry | {"id": "e", "text": "{purchase_history} {target_item} {price}"}],
                         "unknown placeholder(s) {price}"),
        "clash.yaml": ([entry | {"id": "unseen-3"}], "unseen-3 already exist"),
        "empty.yaml": ([], "no templates in the file"),
    }
    for name, (content, problem) in bad.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        with pytest.raises(BenchError, match=re.escape(problem)) as err:
            add_held_out(path)
        assert str(path.resolve() if name == "clash.yaml" else path) in str(err.value) and "\n" not in str(err.value)
    # through the command line: one line naming the file, before any work
    assert cli.main(["robustness", "--dataset", "ml-100k", "--methods", "tallrec",
                     "--templates", str(tmp_path / "seen.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0
    assert str(tmp_path / "seen.yaml") in err and "tag is 'seen'" in err
