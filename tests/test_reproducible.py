"""Reproducible by anyone (issue 12): the compact per-user file recomputes the metrics, provenance is taken at the
start, publishing needs a clean tree, budget stops are recorded, the user subsample ignores the run seed, the same
cell under machine load gives the same metrics, fresh cells are set beside their reference, and the audit."""
import threading

import numpy as np
import pytest

from bench import results, runner
from bench.errors import BenchError
from bench.io import read_json
from bench.report import audit as audit_mod
from bench.report.reference import compare_with_reference
from bench.results import COMPACT_FILE, Protocol, read_compact, recompute_metrics
from bench.runner import Cell, run_cell
from bench.training import BestOnValidation, budget_stopped, recording_budget_stops, report_budget_stop

CLEAN = {"commit": "c" * 40, "dirty": False, "diff_sha256": None}


@pytest.fixture()
def published(tmp_path, monkeypatch):
    """A stand-in for the tracked results/ folder, and a clean git state whose commit exists."""
    root = tmp_path / "results"
    monkeypatch.setattr(results, "published_root", lambda: root)
    monkeypatch.setattr(runner, "git_state", lambda: dict(CLEAN))
    monkeypatch.setattr(audit_mod, "commit_exists", lambda c: c == CLEAN["commit"])
    return root


@pytest.mark.parametrize("protocol", [Protocol("sampled", "uniform", 20), Protocol("full")])
def test_metrics_recompute_exactly_from_the_compact_file(tmp_path, tiny_name, protocol):
    [(_, res, folder)] = run_cell(Cell(tiny_name, "pop", 0, (protocol,)), tmp_path, log=lambda m: None)
    z = read_compact(folder / COMPACT_FILE)
    assert len(z["users"]) == res["n_users"] and (z["n_neg"] >= 1).all()
    again = recompute_metrics(folder, source="compact")
    assert again["auc"] is None  # pooled AUC needs the scores, which stay in the local per_user.npz
    for k, v in res["metrics"].items():
        if k != "auc":
            assert again[k] == v, k   # exact: same ranks, same GAUC floats, same summation
    assert (folder / COMPACT_FILE).stat().st_size < 20_000


def test_compact_file_is_byte_identical_for_identical_values(tmp_path):
    args = (np.array(["u1", "u,2"]), np.array([0, 5]), np.array([99, 99]), np.array([1.0, 0.1 + 0.2]))
    results.write_compact(tmp_path / "a.csv.gz", *args)
    results.write_compact(tmp_path / "b.csv.gz", *args)
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()
    z = read_compact(tmp_path / "a.csv.gz")
    assert list(z["users"]) == ["u1", "u,2"] and z["gauc"][1] == 0.1 + 0.2 and list(z["n_neg"]) == [99, 99]


def test_provenance_is_taken_when_the_cell_starts(tmp_path, tiny_name, monkeypatch):
    states = iter([{"commit": "a" * 40, "dirty": True, "diff_sha256": "d" * 64}] + [dict(CLEAN)] * 10)
    monkeypatch.setattr(runner, "git_state", lambda: next(states))
    [(_, res, _)] = run_cell(Cell(tiny_name, "pop", 0), tmp_path, log=lambda m: None)
    assert res["provenance"]["taken"] == "cell start" and res["provenance"]["commit"] == "a" * 40
    assert res["provenance"]["dirty"] is True and res["provenance"]["diff_sha256"] == "d" * 64
    assert res["environment"]["git"]["commit"] == "a" * 40


def test_git_state_hashes_the_diff_of_this_checkout():
    state = results.git_state()
    assert set(state) == {"commit", "dirty", "diff_sha256"}
    assert (state["diff_sha256"] is None) == (state["dirty"] is False)
    if state["commit"]:
        assert results.commit_exists(state["commit"]) and not results.commit_exists("0" * 40)


def test_git_state_takes_no_lock_that_a_timeout_could_leave_behind(monkeypatch):
    calls = []
    real = results.subprocess.run
    monkeypatch.setattr(results.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or real(cmd, **kw))
    results.git_state()
    assert calls and all(cmd[:2] == ["git", "--no-optional-locks"] for cmd in calls)


def test_publishing_a_dirty_tree_is_refused_before_any_work(published, tiny_name, monkeypatch):
    monkeypatch.setattr(runner, "git_state", lambda: {"commit": "c" * 40, "dirty": True, "diff_sha256": "x"})
    with pytest.raises(BenchError, match="refusing to publish") as err:
        run_cell(Cell(tiny_name, "pop", 0), published, log=lambda m: None)
    assert "\n" not in str(err.value) and not published.exists()


def test_a_tree_changed_during_the_cell_is_not_published(published, tiny_name, monkeypatch):
    states = iter([dict(CLEAN), {"commit": "c" * 40, "dirty": True, "diff_sha256": "y"}])
    monkeypatch.setattr(runner, "git_state", lambda: next(states))
    with pytest.raises(BenchError, match="changed while the cell ran"):
        run_cell(Cell(tiny_name, "pop", 0), published, log=lambda m: None)
    assert not list(published.rglob("result.json"))


def test_budget_stops_are_recorded_from_every_route():
    with recording_budget_stops() as stops:
        es = BestOnValidation(None, max_minutes=0.0)
        assert es.stop_reason() == "max_minutes" and es.budget_stopped
        report_budget_stop("stage 2")
    assert stops == ["training", "stage 2"]
    report_budget_stop("outside a cell is a no-op")
    assert budget_stopped({"stage1": {"stopped_by": "max_minutes"}}) and budget_stopped({"budget_stopped": True})
    assert not budget_stopped({"stopped_by": "patience", "history": [{"epoch": 0}]}) and budget_stopped({}, ["x"])


def test_a_budget_stopped_cell_is_recorded_and_marked(tmp_path, tiny_name):
    from bench.report.leaderboard import build, render
    [(_, res, _)] = run_cell(Cell(tiny_name, "bpr", 0, overrides={"epochs": 3, "max_minutes": 0.0}), tmp_path,
                             log=lambda m: None)
    assert res["training"]["budget_stopped"] is True and res["training"]["epochs_run"] == 1
    [(_, ok, _)] = run_cell(Cell(tiny_name, "pop", 0), tmp_path, log=lambda m: None)
    assert ok["training"]["budget_stopped"] is False
    md = render(build(tmp_path, "ml-tiny"), "md")
    assert "bpr (budget-stopped)" in md and "pop (budget-stopped)" not in md and "not reproducible" in md


def test_a_stage_kept_at_its_starting_state_is_named_in_the_run_summary_and_the_leaderboard(tmp_path, tiny_name):
    """CoLLM's published stage 2 kept step 0, so its mapper outputs zero and no collaborative input reaches the LM:
    a reader of the row must be told, not left to find it in result.json."""
    from bench.cli import _summary
    from bench.io import write_json
    from bench.report.leaderboard import KEPT_MARK, build, render, to_csv
    from bench.results import stages_kept_at_start
    assert stages_kept_at_start({"stage1": {"best_step": 150, "steps": 400}, "stage2": {"best_step": 0, "steps": 50},
                                 "zero_shot": {"best_step": 0, "steps": 0}, "unvalidated": {"best_step": None,
                                 "steps": 30}, "budget_stopped": False}) == ["stage2"]
    assert stages_kept_at_start(None) == []
    outs = [run_cell(Cell(tiny_name, "pop", seed), tmp_path, log=lambda m: None)[0] for seed in (0, 1)]
    _, res, folder = outs[1]
    res["training"] = {**res["training"], "stage2": {"best_step": 0, "steps": 50}}
    write_json(folder / "result.json", res)
    cell = Cell(tiny_name, "pop", 1)
    line = _summary(cell, cell.protocols[0], "done", res, folder, 1.0)
    assert "stage2 kept its starting state" in line
    assert "kept its starting state" not in _summary(cell, cell.protocols[0], "done", outs[0][1], outs[0][2], 1.0)
    lb = build(tmp_path, "ml-tiny")
    assert lb.kept_at_start == {"pop": {"stage2": [1]}}
    md = render(lb, "md")
    assert f"pop{KEPT_MARK}" in md and "stage2 kept at step 0 in seed(s) 1 of 2" in md
    import io
    import pandas as pd
    csv = pd.read_csv(io.StringIO(to_csv(lb)), index_col="method", keep_default_na=False)
    assert csv.at["pop", "kept_at_step0"] == "stage2:1"


def test_user_subsample_does_not_depend_on_the_run_seed(tmp_path, tiny_name):
    p = Protocol("sampled", "uniform", 20, max_users=10)
    assert (p.user_rows(500, 0) == p.user_rows(500, 1)).all() and (p.user_rows(500) == p.user_rows(500, 7)).all()
    [(_, a, fa)] = run_cell(Cell(tiny_name, "pop", 0, (p,)), tmp_path, log=lambda m: None)
    [(_, b, fb)] = run_cell(Cell(tiny_name, "pop", 1, (p,)), tmp_path, log=lambda m: None)
    assert a["protocol"]["subsample_seed"] == b["protocol"]["subsample_seed"] == results.SUBSAMPLE_SEED
    assert set(read_compact(fa / COMPACT_FILE)["users"]) == set(read_compact(fb / COMPACT_FILE)["users"])


def _busy(stop: threading.Event) -> None:
    x = np.random.default_rng(0).random((300, 300))
    while not stop.is_set():
        x = np.tanh(x @ x.T / 300)


def test_same_cell_under_machine_load_gives_identical_metrics(tmp_path, tiny_name):
    """The budget is epochs, not minutes: a busy machine makes training slower, never different."""
    cell = Cell(tiny_name, "bpr", 0, overrides={"epochs": 4})
    [(_, quiet, _)] = run_cell(cell, tmp_path / "quiet", log=lambda m: None)
    stop = threading.Event()
    busy = threading.Thread(target=_busy, args=(stop,), daemon=True)
    busy.start()
    try:
        [(_, loaded, _)] = run_cell(cell, tmp_path / "loaded", log=lambda m: None)
    finally:
        stop.set()
        busy.join()
    assert quiet["training"]["epochs_run"] == loaded["training"]["epochs_run"] == 4
    assert quiet["metrics"] == loaded["metrics"]
    assert [h["loss"] for h in quiet["training"]["history"]] == [h["loss"] for h in loaded["training"]["history"]]


def test_fresh_cell_is_set_beside_its_reference(tmp_path, published, tiny_name):
    [(_, _, ref)] = run_cell(Cell(tiny_name, "random", 0), published, log=lambda m: None)
    assert compare_with_reference(ref, published) is None   # a published cell is its own reference
    runs = tmp_path / "runs"
    [(_, _, fresh)] = run_cell(Cell(tiny_name, "random", 0), runs, log=lambda m: None)
    assert compare_with_reference(fresh, runs).startswith("identical to the reference")
    # another torch build: the same ranks for every user, the pooled AUC off in its last digits
    from bench.io import write_json
    res = read_json(fresh / "result.json")
    write_json(fresh / "result.json", {**res, "metrics": {**res["metrics"], "auc": res["metrics"]["auc"] + 3e-9}})
    line = compare_with_reference(fresh, runs)
    assert line.startswith("identical per user to the reference") and "by 3.0e-09" in line, line
    # a pooled AUC that moved further than rounding can move it is not called identical
    write_json(fresh / "result.json", {**res, "metrics": {**res["metrics"], "auc": res["metrics"]["auc"] + 1e-3}})
    assert compare_with_reference(fresh, runs).startswith("agrees within seed noise")
    write_json(fresh / "result.json", res)
    [(_, _, other)] = run_cell(Cell(tiny_name, "random", 1), runs, log=lambda m: None)
    assert "no reference cell" in compare_with_reference(other, runs)
    # another seed's random scores in the fresh cell's place: not identical, but within the noise of the users
    import shutil
    shutil.copy(other / COMPACT_FILE, fresh / COMPACT_FILE)
    shutil.copy(other / "result.json", fresh / "result.json")
    assert compare_with_reference(fresh, runs).startswith("agrees within seed noise"), compare_with_reference(fresh, runs)
    # every positive ranked last: far outside the noise
    z = read_compact(fresh / COMPACT_FILE)
    results.write_compact(fresh / COMPACT_FILE, z["users"], z["n_neg"], z["n_neg"], np.zeros(len(z["users"])))
    res = read_json(fresh / "result.json")
    res["metrics"] = recompute_metrics(fresh, source="compact")
    write_json(fresh / "result.json", res)
    assert compare_with_reference(fresh, runs).startswith("DIFFERS beyond seed noise")


def test_audit_passes_a_clean_publication_and_names_each_failure(published, tiny_name):
    run_cell(Cell(tiny_name, "pop", 0), published, log=lambda m: None)
    [(_, _, folder)] = run_cell(Cell(tiny_name, "random", 0), published, log=lambda m: None)
    rep = audit_mod.audit(published)
    assert rep.cells == 2 and not rep.failures, rep.failures
    # legacy cells are skipped
    legacy = published / "legacy" / "x"
    legacy.mkdir(parents=True)
    (legacy / "result.json").write_text("{}")
    assert audit_mod.audit(published).cells == 2
    # a tampered metric, a missing compact file, a dirty start, a stale profile: each named
    res = read_json(folder / "result.json")
    res["metrics"]["hr@10"] += 0.01
    res["provenance"]["dirty"] = True
    res["method"]["params_hash"] = "00000000"
    from bench.io import write_json
    write_json(folder / "result.json", res)
    problems = " | ".join(p for _, p in audit_mod.audit(published).failures)
    assert "does not reproduce hr@10" in problems and "dirty tree" in problems and "stale" in problems
    (folder / COMPACT_FILE).unlink()
    problems = " | ".join(p for _, p in audit_mod.audit(published).failures)
    assert f"{COMPACT_FILE} missing" in problems


def test_audit_names_a_report_that_is_not_what_its_cells_give(published, tiny_name):
    from bench.report import leaderboard as lb_mod
    from bench.report import reproduce
    from bench.report.significance import compare
    tag = Protocol().tag
    run_cell(Cell(tiny_name, "pop", 0), published, log=lambda m: None)
    run_cell(Cell(tiny_name, "random", 0), published, log=lambda m: None)

    def publish():
        lb_mod.write(lb_mod.build(published, tiny_name, tag), published)
        compare(published, tiny_name, tag, "ndcg@10", reference="random").write(published)
        compare(published, tiny_name, tag, "gauc", methods=["pop"], reference="random").write(published)
        reproduce.write(published, tiny_name, "beauty", tag)

    publish()
    rep = audit_mod.audit(published)
    assert rep.reports == 4 and not rep.failures, rep.failures
    assert audit_mod.audit(published, reports=False).reports is None
    # a new seed lands without its reports being rebuilt: every report that reads pop is named, with its command
    run_cell(Cell(tiny_name, "pop", 1), published, log=lambda m: None)
    stale = dict(audit_mod.audit(published).failures)
    assert f"{tiny_name}/leaderboard-{tag}.md" in stale
    assert f"{tiny_name}/reproduce-beauty-{tag}.md" not in stale, "the paper's table has no pop row: unchanged"
    assert any("-subset-" in name for name in stale), "a subset report is rebuilt from the methods it lists"
    assert (f"bench.py significance --dataset {tiny_name} --protocol {tag} --metric ndcg@10 --reference 'random'"
            in stale[f"{tiny_name}/significance-{tag}-ndcg@10-vs-random.md"])
    from bench.report.current import refresh
    states = dict(refresh(published))
    assert states[f"{tiny_name}/leaderboard-{tag}.md"] == "rewritten"
    assert states[f"{tiny_name}/reproduce-beauty-{tag}.md"] == "unchanged"
    assert not audit_mod.audit(published).failures and set(dict(refresh(published)).values()) == {"unchanged"}
    # a hand edit is named too, and a report whose cells are gone cannot be rebuilt
    md = published / tiny_name / f"significance-{tag}-ndcg@10-vs-random.md"
    md.write_text(md.read_text().replace("pop", "pop ", 1))
    paper = published / tiny_name / f"reproduce-beauty-{tag}.csv"
    paper.write_text(paper.read_text() + "\n")
    stale = dict(audit_mod.audit(published).failures)
    assert "stale report" in stale[str(md.relative_to(published))]
    assert f"reproduce-beauty-{tag}.csv differ" in stale[f"{tiny_name}/reproduce-beauty-{tag}.md"]
    import shutil
    shutil.rmtree(published / tiny_name / tag / "random")
    problems = dict(audit_mod.audit(published).failures)
    assert "cannot be rebuilt" in problems[str(md.relative_to(published))]
    assert "cannot be rebuilt" in dict(refresh(published, tiny_name))[str(md.relative_to(published))]


def test_trained_methods_show_a_bar_per_epoch(tmp_path, tiny_name):
    import contextlib
    from bench.training import showing_progress
    bars = []

    @contextlib.contextmanager
    def sink(total, description):
        bar = {"total": total, "description": description, "done": 0}
        bars.append(bar)
        yield lambda n=1: bar.__setitem__("done", bar["done"] + n)

    with showing_progress(sink):
        run_cell(Cell(tiny_name, "bpr", 0, overrides={"epochs": 2}), tmp_path, log=lambda m: None)
    assert [b["description"] for b in bars] == ["bpr epoch 1/2", "bpr epoch 2/2"]
    assert all(b["total"] > 0 and b["done"] == b["total"] for b in bars)


def test_a_plain_run_writes_to_the_run_folder_and_never_into_results(tmp_path):
    import os
    import subprocess
    import sys
    from bench.paths import PROJECT_ROOT
    published = PROJECT_ROOT / "results"
    before = sorted((p, p.stat().st_mtime_ns) for p in published.rglob("*")) if published.exists() else []
    env = {**os.environ, "LLMREC_RESULTS": str(tmp_path / "mine")}
    r = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench.py"), "run", "--methods", "random"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "mine" / "ml-100k").rglob("result.json")) and (tmp_path / "mine" / "ml-100k" /
                                                                            "leaderboard-sampled-uniform-n99.md").is_file()
    assert "  reference: " in r.stderr and ".py:" not in r.stderr   # compared; no source-location tags
    after = sorted((p, p.stat().st_mtime_ns) for p in published.rglob("*")) if published.exists() else []
    assert before == after


def test_a_rewritten_compact_file_is_read_again_and_reads_are_read_only(tmp_path):
    path = tmp_path / "c.csv.gz"
    results.write_compact(path, np.array(["a", "b"]), np.array([1, 2]), np.array([99, 99]), np.array([0.5, 0.25]))
    first = read_compact(path)
    assert not first["rank"].flags.writeable, "cached arrays are shared, so nobody may change them"
    results.write_compact(path, np.array(["a", "b"]), np.array([3, 4]), np.array([99, 99]), np.array([0.5, 0.25]))
    assert list(read_compact(path)["rank"]) == [3, 4] and list(first["rank"]) == [1, 2]


def test_an_unreadable_compact_file_is_a_one_line_error_naming_it(tmp_path):
    missing, broken = tmp_path / "gone.csv.gz", tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip\nat all")
    for path in (missing, broken):
        with pytest.raises(BenchError, match="cannot read the per-user file") as exc:
            read_compact(path)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)
