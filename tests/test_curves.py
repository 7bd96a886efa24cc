import pandas as pd
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.io import write_json
from bench.report.current import refresh, stale_reports
from bench.report.curves import build, curves_of

RECBOLE = {"valid_metric": "ndcg@10", "best_epoch": 2, "history": [
    {"epoch": 0, "loss": 9.0, "valid": 0.20}, {"epoch": 1, "loss": 8.0, "valid": 0.25},
    {"epoch": 2, "loss": 7.0, "valid": 0.31}]}


def llm(stage2_gauc):
    """Two stages as the LLM loops record them; stage 1's log has no validation value and is not a curve."""
    return {"stage1": {"log": [{"step": 0, "d_acc": 0.2}, {"step": 1, "d_acc": 0.4}]},
            "stage2": {"best_step": 50, "best_valid_gauc": max(stage2_gauc),
                       "curve": {"valid": [{"step": 50 * i, "valid_auc": 0.9, "valid_gauc": g, "valid_ndcg@10": 0.1}
                                           for i, g in enumerate(stage2_gauc)]}}}


def fake(root, method, seed, training, kind="baseline", protocol="sampled-uniform-n99", dataset="d"):
    folder = root / dataset / protocol / method / "abcd1234" / f"seed{seed}"
    write_json(folder / "result.json", {"method": {"name": method, "kind": kind, "params_hash": "abcd1234"},
                                        "seed": seed, "metrics": {"gauc": 0.6}, "training": training})


def test_every_recorded_validation_curve_is_read_by_the_metric_its_loop_selected_on():
    (c,) = curves_of(RECBOLE)
    assert (c.stage, c.metric, c.x, c.xs, c.ys) == ("", "ndcg@10", "epoch", [0, 1, 2], [0.20, 0.25, 0.31])
    (c,) = curves_of(llm([0.50, 0.62, 0.60]))
    assert (c.stage, c.metric, c.x, c.ys) == ("stage2", "gauc", "step", [0.50, 0.62, 0.60]), \
        "valid_gauc, the key the stage names as best_valid_*, not the first valid_* key; the d_acc log is no curve"
    (c,) = curves_of({"finetune": {"history": [{"epoch": 0, "bce": 1.0, "valid_ndcg@10": 0.2}],
                                   "best_valid_ndcg@10": 0.2}})
    assert (c.stage, c.metric, c.x) == ("finetune", "ndcg@10", "epoch")
    assert curves_of(None) == [] and curves_of({"history": [{"epoch": 0, "loss": 1.0}]}) == []


def test_summary_says_whether_a_curve_rose_and_whether_it_ended_at_its_best(tmp_path):
    fake(tmp_path, "sasrec", 0, RECBOLE)
    fake(tmp_path, "sasrec", 1, RECBOLE | {"history": [{"epoch": 0, "valid": 0.30}, {"epoch": 1, "valid": 0.28}]})
    fake(tmp_path, "tallrec", 0, llm([0.55, 0.54, 0.53]), kind="llm")
    fake(tmp_path, "pop", 0, {}, kind="baseline")
    report = build(tmp_path, "d", "sampled-uniform-n99")
    rows = report.rows.set_index(["label", "seed"])
    assert bool(rows.loc[("sasrec", 0), "ends_at_best"]) and bool(rows.loc[("sasrec", 0), "rose"])
    assert not rows.loc[("sasrec", 1), "ends_at_best"] and not rows.loc[("sasrec", 1), "rose"]
    assert rows.loc[("sasrec", 0), "gain"] == pytest.approx(0.11)
    assert not rows.loc[("tallrec", 0), "rose"] and rows.loc[("tallrec", 0), "best_at"] == 0, \
        "a curve that fell from step 0 never rose: its best is the untrained state"
    table = report.table().set_index("Method")
    assert table.loc["sasrec", "Ends at best"] == "1/2" and table.loc["sasrec", "Rose"] == "1/2"
    assert table.loc["sasrec", "Best"] == f"{pd.Series([0.31, 0.30]).mean():.4f} ± {pd.Series([0.31, 0.30]).std():.4f}"
    assert table.loc["sasrec", "Best at"] == "epoch 2, 0"
    assert list(table.index) == ["sasrec", "tallrec"], "baselines before LLM rows, as in the leaderboard"
    md = report.to_markdown()
    assert "No validation curve recorded (nothing trained, or no validation during training): `pop`." in md
    csv = pd.read_csv(pd.io.common.StringIO(report.to_csv()))
    assert len(csv) == 3 and set(csv["method"]) == {"sasrec", "tallrec"}


def test_curves_command_writes_the_report_and_reports_keep_it_current(tmp_path, capsys):
    fake(tmp_path, "sasrec", 0, RECBOLE, dataset="ml-100k")
    assert main(["curves", "--dataset", "ml-100k", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "ml-100k"
    assert {p.name for p in folder.glob("curves-*")} == {f"curves-sampled-uniform-n99.{e}" for e in ("md", "csv",
                                                                                                      "png")}
    assert "| sasrec" in capsys.readouterr().out
    assert stale_reports(tmp_path) == (1, [])
    png = folder / "curves-sampled-uniform-n99.png"
    png.unlink()
    fake(tmp_path, "sasrec", 1, RECBOLE, dataset="ml-100k")  # a new seed: the report is no longer what its cells give
    checked, problems = stale_reports(tmp_path)
    assert checked == 1 and "stale report" in problems[0][1] and "bench.py curves --dataset ml-100k" in problems[0][1]
    assert dict(refresh(tmp_path)) == {"ml-100k/curves-sampled-uniform-n99.md": "rewritten"}
    assert png.is_file(), "the figure is redrawn with the text files"
    assert "| sasrec" in (folder / "curves-sampled-uniform-n99.md").read_text() and stale_reports(tmp_path)[1] == []
    assert (pd.read_csv(folder / "curves-sampled-uniform-n99.csv")["seed"].tolist() == [0, 1])


def test_no_curve_is_a_one_line_error(tmp_path):
    with pytest.raises(BenchError, match="no results for dataset 'd'"):
        build(tmp_path, "d", "sampled-uniform-n99")
    fake(tmp_path, "pop", 0, {})
    with pytest.raises(BenchError, match="records a validation curve"):
        build(tmp_path, "d", "sampled-uniform-n99")
