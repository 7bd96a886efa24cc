"""Methods, recipes and templates from outside the package: --include PATH and entry points, the same conformance
checks as built-in methods (check-method), and a plugin method in a leaderboard like a built-in one."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import plugins
from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "external_method"


def cli(*args, env_path: list[Path] = ()):
    import os
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, env_path)))
    return subprocess.run([sys.executable, str(ROOT / "bench.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env=env)


def entry_point_dir(tmp_path: Path, group: str = "llmrec_bench.methods", value: str = "cooc:CoOccurrence") -> Path:
    """What `pip install` of a package declaring the entry point leaves on sys.path: a *.dist-info folder."""
    site = tmp_path / "site"
    info = site / "cooc_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cooc-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\ncooc = {value}\n")
    return site


@pytest.fixture()
def clean_registries(monkeypatch):
    """An in-process include must not leak into other tests."""
    from bench import method
    from bench.data import recipe
    from bench.lm import prompts
    method.available()  # the built-ins are in the registry that is copied
    monkeypatch.setattr(method, "_REGISTRY", dict(method._REGISTRY))
    monkeypatch.setattr(recipe, "_PLUGIN_RECIPES", {})
    monkeypatch.setattr(prompts, "_PLUGIN_FILES", [])
    monkeypatch.setattr(plugins, "_included", {})
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_included_method_runs_passes_check_method_and_enters_the_leaderboard(tmp_path):
    r = cli("check-method", "cooc", "--include", str(EXAMPLE))
    assert r.returncode == 0 and "check-method cooc: all 10 checks pass" in r.stdout, r.stdout + r.stderr
    r = cli("run", "--include", str(EXAMPLE), "--methods", "pop,cooc", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "done ml-100k cooc seed 0 sampled-uniform-n99" in r.stderr
    board = (tmp_path / "ml-100k" / "leaderboard-sampled-uniform-n99.md").read_text()
    assert "| cooc" in board and "| pop" in board
    r = cli("leaderboard", "--dataset", "ml-100k", "--target", "cooc", "--out", str(tmp_path))
    assert r.returncode == 0 and "Improvement (%)" in r.stdout
    r = cli("significance", "--dataset", "ml-100k", "--metric", "ndcg@10", "--out", str(tmp_path))
    assert r.returncode == 0 and "| cooc" in r.stdout
    r = cli("run", "--methods", "cooc", "--out", str(tmp_path))  # without the plugin the name is unknown
    assert r.returncode == 2 and "unknown method 'cooc'" in r.stderr


def test_entry_point_method_is_found_without_include(tmp_path):
    path = [entry_point_dir(tmp_path), EXAMPLE]
    r = cli("methods", env_path=path)
    assert r.returncode == 0 and "| cooc" in r.stdout, r.stderr
    r = cli("check-method", "cooc", "--set", "cooc.window=2", env_path=path)
    assert r.returncode == 0 and "all 10 checks pass" in r.stdout, r.stdout + r.stderr
    r = cli("run", "--methods", "cooc,random", "--protocol", "full", "--users", "100", "--out", str(tmp_path / "o"),
            env_path=path)
    assert r.returncode == 0, r.stderr
    assert "| cooc" in (tmp_path / "o" / "ml-100k" / "leaderboard-full-u100.md").read_text()


def test_a_broken_entry_point_is_one_line_naming_it(tmp_path):
    r = cli("methods", env_path=[entry_point_dir(tmp_path, value="no_such_module:Thing")])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: plugin entry point cooc = no_such_module:Thing (group llmrec_bench.methods) cannot be loaded: "
        "ModuleNotFoundError: No module named 'no_such_module'"]


def test_a_plugin_registers_a_recipe_and_templates(tmp_path, clean_registries):
    from bench.data.recipe import available_recipes, load_recipe
    from bench.lm.prompts import get_template, template_ids
    from bench.method import get_method
    folder = tmp_path / "plugin"
    folder.mkdir()
    base = (ROOT / "datasets" / "ml-100k.yaml").read_text().replace("kcore: 5", "kcore: 10")
    (folder / "ml-100k-10core.yaml").write_text(base)
    (folder / "templates.yaml").write_text(textwrap.dedent("""\
        - id: plugin-0
          kind: recommendation
          tag: seen
          text: "History: {purchase_history}. Next: {target_item}?"
          answer_cue: " Answer:"
        """))
    (folder / "register.py").write_text(textwrap.dedent("""\
        from pathlib import Path
        from bench.plugins import register_recipe, register_templates
        here = Path(__file__).parent
        register_recipe(here / "ml-100k-10core.yaml")
        register_templates(here / "templates.yaml")
        """))
    assert plugins.include(folder) == [] and plugins.included() == (str(folder.resolve()),)
    assert "ml-100k-10core" in available_recipes() and load_recipe("ml-100k-10core").kcore == 10
    assert get_template("plugin-0").answer_cue == " Answer:" and "plugin-0" in template_ids()
    assert get_method("tallrec")(template="plugin-0").params.template == "plugin-0"  # a valid choice now
    with pytest.raises(BenchError, match="already exist"):
        plugins.register_templates(ROOT / "bench" / "lm" / "templates.yaml")
    with pytest.raises(BenchError, match="the name 'ml-100k' is taken"):
        plugins.register_recipe(ROOT / "datasets" / "ml-100k.yaml")


def test_include_registers_the_methods_a_file_defines(clean_registries):
    from bench.method import get_method
    assert plugins.include(EXAMPLE / "cooc.py") == ["cooc"]
    assert get_method("cooc").name == "cooc" and plugins.include(EXAMPLE / "cooc.py") == ["cooc"]  # once


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.py", "no such file or folder"),
    (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "expected a .py file or a folder"),
    (lambda p: (p / "bad.py").write_text("import nowhere_at_all\n") and p / "bad.py", "ModuleNotFoundError"),
    (lambda p: (p / "clash.py").write_text("from bench.method import Method\nclass P(Method):\n    name = 'pop'\n")
     and p / "clash.py",
     "method name 'pop' registered twice"),
])
def test_bad_includes_are_one_line(tmp_path, clean_registries, make, message):
    with pytest.raises(BenchError, match=message):
        plugins.include(make(tmp_path))
