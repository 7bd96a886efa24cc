"""The README's command table and the CLI's docstring name every command the parser has."""
import re
from pathlib import Path

import bench.cli as cli

ROOT = Path(__file__).resolve().parents[1]


def commands() -> set[str]:
    parser = cli.build_parser()
    [sub] = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(sub.choices)


def test_readme_lists_every_command():
    table = set(re.findall(r"^\| `bench\.py ([a-z-]+)", (ROOT / "README.md").read_text(), flags=re.M))
    assert commands() <= table, f"README command table lacks {sorted(commands() - table)}"


def test_cli_docstring_names_every_command():
    doc = cli.__doc__
    missing = [c for c in commands() if not re.search(rf"\b{re.escape(c)}\b", doc)]
    assert not missing, missing
