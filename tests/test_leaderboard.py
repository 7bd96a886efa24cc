import re

import pytest

from bench.errors import BenchError
from bench.io import write_json
from bench.report.leaderboard import build, render, to_csv, write

METRICS = ("auc", "gauc", "hr@1", "hr@5", "hr@10", "ndcg@1", "ndcg@5", "ndcg@10", "mrr")


def fake(root, method, seed, hr10, kind="baseline", params=None, fit_s=None, profile="quick", overrides=None,
         device="cpu", params_hash="abcd1234", protocol="sampled-uniform-n99", training=None, timings=None):
    m = {k: 0.1 for k in METRICS} | {"hr@10": hr10, "auc": 0.5 + hr10 / 2}
    folder = root / "d" / protocol / method / params_hash / f"seed{seed}"
    write_json(folder / "result.json", {"method": {"name": method, "kind": kind, "params_hash": params_hash,
                                                   "profile": profile, "params": params or {},
                                                   "overrides": overrides or {}},
                                        "seed": seed, "metrics": m, "environment": {"device": device},
                                        "dataset": {"fingerprint": "f", "text_source": {"title_words": 7}},
                                        "timings": {"fit_s": fit_s, **(timings or {})},
                                        "training": training or {}})


def test_caption_states_each_methods_training_budget(tmp_path):
    fake(tmp_path, "pop", 0, 0.30)
    fake(tmp_path, "sasrec", 0, 0.40, params={"epochs": 7, "learning_rate": 1e-3, "max_minutes": 10}, fit_s=100.0)
    fake(tmp_path, "sasrec", 1, 0.44, params={"epochs": 7, "learning_rate": 1e-3, "max_minutes": 10}, fit_s=140.0)
    md = render(build(tmp_path, "d"), "md")
    assert "- `sasrec`: profile quick: epochs 7, max_minutes 10; fit 120 s" in md
    assert "- `pop`: profile quick\n" in md, "no budget parameters and no fit time: the profile alone"


def test_fit_time_of_a_fit_resumed_by_older_code_reads_as_a_lower_bound(tmp_path):
    resumed = {"resumed": [{"stage": "train", "from_epoch": 5}]}
    fake(tmp_path, "bert4rec", 0, 0.40, fit_s=1000.0)
    fake(tmp_path, "bert4rec", 1, 0.40, fit_s=200.0, training=resumed)  # timed over its last run only
    fake(tmp_path, "sasrec", 0, 0.40, fit_s=900.0, training=resumed, timings={"fit_s_earlier_runs": 700.0})
    md = render(build(tmp_path, "d"), "md")
    assert ("- `bert4rec`: profile quick; fit ≥ 600 s (a seed's fit was resumed and timed over its last run only)"
            in md)
    assert "- `sasrec`: profile quick; fit 900 s\n" in md, "a resume timed across its runs is a whole fit's time"


def test_budget_line_says_where_the_validation_curve_was_still_rising_at_the_end(tmp_path):
    def history(*values):
        return {"valid_metric": "ndcg@10", "history": [{"epoch": i, "valid": v} for i, v in enumerate(values)]}
    fake(tmp_path, "sasrec", 0, 0.40, training=history(0.2, 0.3, 0.4))
    fake(tmp_path, "sasrec", 1, 0.40, training=history(0.2, 0.4, 0.3))
    fake(tmp_path, "gru4rec", 0, 0.40, training=history(0.3, 0.3))          # flat: never rose
    fake(tmp_path, "tallrec", 0, 0.40, kind="llm", training={"finetune": {"best_valid_gauc": 0.7, "curve": {
        "valid": [{"step": 0, "valid_gauc": 0.5}, {"step": 50, "valid_gauc": 0.7}]}}})
    md = render(build(tmp_path, "d"), "md")
    assert "- `sasrec`: profile quick; validation still rising at the end in seed(s) 0 of 2\n" in md
    assert "- `gru4rec`: profile quick\n" in md
    assert "- `tallrec`: profile quick; finetune validation still rising at the end in seed(s) 0 of 1\n" in md


def test_caption_names_what_was_set_away_from_the_profile_and_a_gpu(tmp_path):
    fake(tmp_path, "tallrec", 0, 0.40, params={"epochs": 3, "train_groups": 256}, fit_s=50.0, profile="paper",
         params_hash="aaaa1111")
    fake(tmp_path, "tallrec", 0, 0.50, params={"epochs": 1, "train_groups": 6000, "lr": 2e-4}, fit_s=100.0,
         profile="paper", overrides={"train_groups": 6000, "epochs": 1, "lr": 2e-4, "loss": "softmax"}, device="cuda",
         params_hash="bbbb2222")
    md = render(build(tmp_path, "d"), "md")
    assert "- `tallrec[aaaa1111]`: profile paper: epochs 3, train_groups 256; fit 50 s" in md
    assert ("- `tallrec[bbbb2222]`: profile paper: epochs 1, train_groups 6000; also set: loss softmax, lr 0.0002; "
            "trained on cuda; fit 100 s") in md, "budget keys are listed once, the other overrides after them"


def test_caption_leaves_out_budget_params_the_configuration_never_reads(tmp_path):
    import methods  # noqa: F401  (registers ganprompt)
    stage1 = {"epochs": 8, "stage1_epochs": 1, "align_steps": 1500, "train_groups": 300}
    fake(tmp_path, "ganprompt-plain", 0, 0.40, kind="control", params={**stage1, "backbone": "plain"})
    fake(tmp_path, "ganprompt", 0, 0.40, kind="proposed", params={**stage1, "backbone": "encoder+causal"})
    md = render(build(tmp_path, "d"), "md")
    assert "- `ganprompt-plain`: profile quick: epochs 8, train_groups 300\n" in md, "plain has no stage 1"
    assert "- `ganprompt`: profile quick: epochs 8, stage1_epochs 1, train_groups 300, align_steps 1500\n" in md


def test_table_marks_best_and_improvement(tmp_path):
    fake(tmp_path, "pop", 0, 0.30)
    fake(tmp_path, "sasrec", 0, 0.40)
    fake(tmp_path, "sasrec", 1, 0.44)
    fake(tmp_path, "ganprompt", 0, 0.50, kind="proposed")
    lb = build(tmp_path, "d", target="ganprompt")
    assert lb.mean.at["sasrec", "hr@10"] == pytest.approx(0.42) and lb.n_seeds["sasrec"] == 2
    assert lb.best_baseline["hr@10"] == "sasrec"
    assert lb.improvement()["hr@10"] == pytest.approx(100 * (0.50 - 0.42) / 0.42)
    md = render(lb, "md")
    assert "**0.5000**" in md and "_0.4200 ± 0.0283_" in md and "Improvement (%)" in md and "+19.05" in md
    assert "Chance level with 100 candidates: AUC 0.5, HR@10 0.1000" in md
    tex = render(lb, "tex")
    assert "\\textbf{0.5000}" in tex and "\\underline{0.4200 ± 0.0283}" in tex
    assert "hr@10_std" in to_csv(lb)
    paths = write(lb, tmp_path / "out")
    assert {p.suffix for p in paths} == {".md", ".tex", ".csv"} and all(p.is_file() for p in paths)
    assert list(lb.mean.index)[-1] == "ganprompt"
    assert "`textsim` is missing" in md, "a table with LLM methods names the missing zero-shot text floor"
    assert "Item text read by the text methods: `title_words` for 7 items" in md
    fake(tmp_path, "textsim", 0, 0.35, kind="text")
    assert "`textsim` is missing" not in render(build(tmp_path, "d", target="ganprompt"), "md")


def test_no_text_source_line_without_text_methods(tmp_path):
    fake(tmp_path, "pop", 0, 0.30)
    fake(tmp_path, "sasrec", 0, 0.40)
    assert "Item text read" not in render(build(tmp_path, "d"), "md")


def test_caption_names_methods_run_under_other_protocols_only(tmp_path):
    fake(tmp_path, "pop", 0, 0.30)
    fake(tmp_path, "pop", 0, 0.03, protocol="full")
    fake(tmp_path, "din", 0, 0.50)
    fake(tmp_path, "tallrec", 0, 0.45, protocol="sampled-uniform-n99-u300")
    (tmp_path / "d" / "candidates" / "x" / "h" / "seed0").mkdir(parents=True)  # not a protocol: never read as one
    (tmp_path / "d" / "full" / "sasrec" / "h" / "seed0").mkdir(parents=True)    # started, never finished: no row
    full = render(build(tmp_path, "d", "full"), "md")
    assert ("Not in this table, with results on `d` under other protocols only: `din` (sampled-uniform-n99); "
            "`tallrec` (sampled-uniform-n99-u300).") in full
    assert "`sasrec`" not in full and "`pop` (" not in full
    sampled = render(build(tmp_path, "d"), "md")
    assert "Not in this table, with results on `d` under other protocols only: `tallrec` (sampled-uniform-n99-u300)." \
        in sampled, "the finished u300 cell is named; pop and din have rows here"
    fake(tmp_path, "tallrec", 0, 0.45)
    assert "Not in this table" not in render(build(tmp_path, "d"), "md"), "every method has a row: no note"


def test_missing_results_and_target_are_one_line_errors(tmp_path):
    with pytest.raises(BenchError, match="no results for dataset 'd'"):
        build(tmp_path, "d")
    fake(tmp_path, "pop", 0, 0.3)
    with pytest.raises(BenchError, match="target method 'x'"):
        build(tmp_path, "d", target="x")
    broken = tmp_path / "d" / "sampled-uniform-n99" / "pop" / "abcd1234" / "seed1" / "result.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"method": ')  # a seed that cannot be read is named, not left out of the mean
    with pytest.raises(BenchError, match=re.escape(f"{broken}: not valid JSON")) as e:
        build(tmp_path, "d")
    assert "\n" not in str(e.value)


def test_reproduce_table_beside_the_paper(tmp_path):
    from bench.report.reproduce import paper_table, write
    beauty = paper_table("beauty")
    assert beauty.at["tallrec", "ndcg@5"] == 0.438516 and set(paper_table("toys").index) == set(beauty.index)
    fake(tmp_path, "sasrec", 0, 0.60)
    md, paths = write(tmp_path, "d", "beauty", "sampled-uniform-n99")
    assert "0.6000 / 0.6140 (-0.0140)" in md and "not run" in md
    tallrec_line = next(line for line in md.splitlines() if line.startswith("| tallrec"))
    assert "NDCG@5" in tallrec_line, "the published TALLRec row breaks NDCG@5 <= HR@5"
    assert all(p.is_file() for p in paths)


def test_reproduce_prints_the_chance_level_of_our_protocol(tmp_path):
    import math
    from bench.report.reproduce import side_by_side
    fake(tmp_path, "sasrec", 0, 0.60)
    md, df = side_by_side(tmp_path, "d", "beauty", "sampled-uniform-n99")
    # by hand: 100 candidates, the positive's rank r uniform on 1..100, so HR@k = k/100, NDCG@k = sum_{r<=k}
    # 1/log2(r+1) / 100, MRR = sum_r 1/r / 100, AUC 0.5
    ndcg = {k: sum(1 / math.log2(r + 1) for r in range(1, k + 1)) / 100 for k in (1, 5, 10)}
    hand = {"auc": 0.5, "hr@1": 0.01, "hr@5": 0.05, "hr@10": 0.10, "ndcg@1": ndcg[1], "ndcg@5": ndcg[5],
            "ndcg@10": ndcg[10], "mrr": sum(1 / r for r in range(1, 101)) / 100}
    row = next(line for line in md.splitlines() if line.startswith("| chance"))
    assert [c.strip() for c in row.strip("|").split("|")][:9] == [
        "chance (random scores, 100 candidates)", *[f"{hand[m]:.4f}" for m in df["metric"].unique()]]
    assert "Chance level with 100 candidates: AUC 0.5, HR@10 0.1000, NDCG@10 0.0454, MRR 0.0519" in md
    chance = df.groupby("metric")["chance"].first()
    assert all(chance[m] == pytest.approx(v) for m, v in hand.items())


def test_reproduce_row_is_the_asked_profiles_configuration_where_a_method_has_several(tmp_path):
    from bench.method import get_method
    from bench.report.reproduce import side_by_side
    from bench.results import params_hash
    quick = params_hash(get_method("tallrec").from_profile("quick").get_params())
    paper = params_hash(get_method("tallrec").from_profile("paper").get_params())
    fake(tmp_path, "tallrec", 0, 0.60, params_hash=quick)
    fake(tmp_path, "tallrec", 0, 0.80, params_hash=paper, profile="paper")
    rows = {p: next(line for line in side_by_side(tmp_path, "d", "beauty", "sampled-uniform-n99", profile=p)[0]
                    .splitlines() if line.startswith("| tallrec")) for p in ("quick", "paper")}
    assert "0.6000 / 0.4713" in rows["quick"] and "0.8000 / 0.4713" in rows["paper"], "HR@10 of the asked profile"
    other = params_hash(get_method("tallrec").from_profile("quick", lr=0.5).get_params())
    assert "not run" in side_by_side(tmp_path, "d", "beauty", "sampled-uniform-n99",
                                     overrides={"tallrec": {"lr": 0.5}})[0].split("| tallrec")[1].split("\n")[0]
    assert other not in (quick, paper)


def test_labels_split_configurations_and_name_them_back():
    from bench.results import label_name, method_labels
    labels = method_labels([("sasrec", "aa11"), ("sasrec", "bb22"), ("pop", "cc33")])
    assert labels == ["sasrec[aa11]", "sasrec[bb22]", "pop"]
    assert [label_name(lab) for lab in labels] == ["sasrec", "sasrec", "pop"]
