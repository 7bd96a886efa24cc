"""bench.api: the commands as functions, and the CLI as parsing over them."""
import subprocess
import sys
from pathlib import Path

import pytest

from bench import api, cli
from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_trains_two_methods_and_reports_through_the_api_alone(tmp_path):
    source = (ROOT / "examples" / "quickstart.py").read_text()
    assert "bench.cli" not in source and "bench.report" not in source and "bench.runner" not in source
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)], capture_output=True,
                       text=True, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "leaderboard-sampled-uniform-n99.md" in r.stdout
    assert "significance-sampled-uniform-n99-ndcg@10.md" in r.stdout
    board = (tmp_path / "ml-100k" / "leaderboard-sampled-uniform-n99.md").read_text()
    assert "| pop" in board and "| random" in board and "Improvement (%)" in board
    assert (tmp_path / "ml-100k" / "significance-sampled-uniform-n99-ndcg@10.csv").is_file()
    # the results table of a second run reads the finished cells back
    again = api.run(dataset="ml-100k", methods="random,pop", out=tmp_path)
    assert list(again.table["status"]) == ["skipped", "skipped"] and again.table["ndcg@10"].notna().all()
    lb = api.leaderboard("ml-100k", out=tmp_path, write=False)
    assert list(lb.table.index) == ["pop", "random"] and lb.table.at["pop", "hr@10"] > lb.table.at["random", "hr@10"]
    rep = api.reproduce("beauty", dataset="ml-100k", negatives=99, run=False, out=tmp_path)
    assert rep.protocol == "sampled-uniform-n99" and rep.run is None and all(p.is_file() for p in rep.written)
    assert {"ours", "paper", "diff"} <= set(rep.table.columns) and "not run" in rep.markdown
    with pytest.raises(BenchError, match="sampled-uniform-n19-u300"):  # the quick profile's CPU budget
        api.reproduce("beauty", dataset="ml-100k", run=False, out=tmp_path)


def test_reproduce_without_results_names_the_stored_protocols_that_would_render(tmp_path):
    for folder in ("sampled-uniform-n99", "sampled-uniform-n99-u300", "full", "probes"):
        (tmp_path / "toys-5core" / folder).mkdir(parents=True)
    with pytest.raises(BenchError) as err:
        api.reproduce("toys", run=False, out=tmp_path)
    message = str(err.value)
    assert "no results for dataset 'toys', protocol 'sampled-uniform-n19-u300'" in message
    assert message.endswith("holds results for: --dataset toys-5core --negatives 99 | "
                            "--dataset toys-5core --negatives 99 --users 300")


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": "pop", "overrides": {"sasrec": {"epochs": 1}}}, "not in methods"),
    ({"methods": "sasrec", "overrides": {"sasrec": {"epochs": "five"}}}, "epochs='five': expected int"),
    ({"methods": "sasrec", "overrides": ["sasrec.loss_type=hinge"]}, "loss_type='hinge': valid: CE, BPR"),
    ({"protocol": "sampled-best-n9"}, "sampler 'best'"),
    ({"seeds": "a"}, "--seeds 'a'"),
    ({"methods": "tallrec", "protocol": "full"}, "does not support full ranking"),
    ({"executor": "slurm"}, "--executor 'slurm'"),
])
def test_bad_options_fail_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(BenchError, match=message):
        api.plan_run(**{"out": tmp_path, **kwargs})
    assert not any(tmp_path.iterdir())


def test_a_plan_is_the_grid(tmp_path):
    plan = api.plan_run("ml-100k", ["random", "pop"], "0,1", "sampled,full", "uniform,popularity", 9, 50,
                        out=tmp_path)
    assert [(c.method, c.seed) for c in plan.cells] == [("random", 0), ("pop", 0), ("random", 1), ("pop", 1)]
    assert [p.tag for p in plan.protocols] == ["sampled-uniform-n9-u50", "sampled-popularity-n9-u50", "full-u50"]


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def test_parent_parsers_declare_shared_options_once_and_keep_per_command_defaults():
    assert parse("run").negatives == 99 and parse("reproduce", "--table", "beauty").negatives is None
    assert parse("run").methods == "random,pop,sasrec" and parse("robustness").methods == "ganprompt,tallrec,collm"
    for argv in (["run"], ["status"], ["leaderboard", "--dataset", "x"], ["significance", "--dataset", "x"]):
        assert parse(*argv, "--out", "elsewhere").out == "elsewhere"
    for argv in (["run"], ["reproduce", "--table", "toys"], ["compare-protocols"]):
        assert parse(*argv, "--executor", "ray").executor == "ray"
    assert parse("audit").out == "results" and parse("audit").reports and not parse("audit", "--cells-only").reports


@pytest.mark.parametrize("argv, function", [
    (["reproduce", "--table", "beauty", "--no-run"], "reproduce"),
    (["compare-protocols", "--methods", "random,pop", "--no-run"], "compare_protocols"),
])
def test_reproduce_and_compare_protocols_leave_args_alone_and_call_the_api(monkeypatch, argv, function):
    calls = []

    class Stop(Exception):
        pass

    def fake(*a, **kw):
        calls.append((a, kw))
        raise Stop
    monkeypatch.setattr(api, function, fake)
    monkeypatch.setattr(cli, "cmd_run", lambda args: pytest.fail("must not call cmd_run"))
    args = parse(*argv)
    before = dict(vars(args))
    with pytest.raises(Stop):
        args.func(args)
    assert vars(args) == before and len(calls) == 1 and calls[0][1]["run"] is False


def test_robustness_through_the_api_trains_on_the_seen_template(tmp_path):
    import yaml
    from tests.conftest import tiny_recipe
    from tests.test_conformance import TINY
    recipe = tmp_path / "ml-tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe().to_dict()))
    messages = []
    with pytest.raises(BenchError, match="does not read prompts"):
        api.robustness(str(recipe), methods="pop", negatives=10, users=8, out=tmp_path / "o")
    rep = api.robustness(str(recipe), methods="tallrec", negatives=10, users=8, variants="templates",
                         overrides={"tallrec": dict(TINY["tallrec"])}, out=tmp_path / "o", log=messages.append)
    assert "tallrec: trained on the seen template 'seen-0' for the robustness suite" in messages[0]
    assert rep.values.shape == (12, 1) and "seen-0" in rep.values.index and rep.written
    again = api.robustness(str(recipe), methods="tallrec", negatives=10, users=8, variants="templates",
                           overrides={"tallrec": dict(TINY["tallrec"])}, out=tmp_path / "o", log=messages.append)
    assert any("finished earlier" in m for m in messages) and again.values.equals(rep.values)
