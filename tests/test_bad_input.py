"""Bad input keeps the one-line promise (issue 12): each malformed input gives one line naming the file and the
problem, no traceback, no retry of a deterministic error, and no partial cell left behind."""
import gzip
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
N_USERS, N_ITEMS = 10, 10


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "bench.py"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def atomic_dataset(folder: Path, item_lines=None, rating=5) -> Path:
    """A valid tiny RecBole atomic dataset (10 users x 5 of 10 items, each item 5 users) and its recipe; returns the recipe path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(N_USERS):
        for k in range(5):
            rows.append(f"u{u}\ti{(u + k) % N_ITEMS}\t{rating}\t{k}")
    (folder / "t.inter").write_text("\n".join(rows) + "\n")
    items = item_lines or [f"i{i}\tTitle {i}" for i in range(N_ITEMS)]
    (folder / "t.item").write_bytes(("item_id:token\ttitle:token_seq\n" + "\n".join(items) + "\n").encode("utf-8")
                                    if isinstance(items[0], str) else b"item_id:token\ttitle:token_seq\n"
                                    + b"\n".join(items) + b"\n")
    recipe = folder / "t.yaml"
    recipe.write_text(f"name: t\nformat: recbole-atomic\npath: {folder}\nfiles: {{inter: t.inter, item: t.item}}\n"
                      "rating_threshold: 4\nkcore: 3\ntext_field: title\n")
    return recipe


def amazon_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(f'{{"reviewerID": "u{u}", "asin": "a{(u + k) % 9}", "overall": 5, "unixReviewTime": {k}}}\n'
                    for u in range(30) for k in range(5)).encode()
    packed = gzip.compress(lines)
    (folder / "r.json.gz").write_bytes(packed[: len(packed) // 2])   # truncated mid-stream
    (folder / "m.json").write_text("".join(f"{{'asin': 'a{i}', 'title': 't{i}'}}\n" for i in range(9)))
    recipe = folder / "a.yaml"
    recipe.write_text(f"name: a\nformat: amazon2014\npath: {folder}\nfiles: {{reviews: r.json.gz, meta: m.json}}\n"
                      "rating_threshold: 4\nkcore: 3\ntext_field: title\n")
    return recipe


def one_line(r, *needles):
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in lines if line.startswith(("error:", "failed"))]
    assert len(errors) == 1, r.stderr
    for needle in needles:
        assert needle in errors[0], r.stderr
    return errors[0]


def no_cells(out: Path):
    return not out.exists() or not list(out.rglob("result.json")) and not list(out.rglob("seed*"))


@pytest.mark.parametrize("make, needles", [
    (lambda d: amazon_dataset(d), ["r.json.gz", "truncated or corrupt gzip"]),
    (lambda d: atomic_dataset(d, item_lines=[b"i0\tCaf\xe9 au lait"] + [f"i{i}\tT{i}".encode() for i in range(1, N_ITEMS)]),
     ["t.item", "line 2, byte 7", "0xe9", "not UTF-8"]),
    (lambda d: atomic_dataset(d, rating=1), ["t.inter", "no interaction", "survives the filters"]),
])
def test_malformed_data_is_one_line_naming_the_file(tmp_path, make, needles):
    recipe = make(tmp_path / "data")
    out = tmp_path / "out"
    r = cli("run", "--dataset", str(recipe), "--methods", "pop", "--out", str(out))
    line = one_line(r, *needles)
    assert line.startswith("error: ") and r.returncode == 2   # found before any cell runs: one line for the run
    assert "attempt" not in r.stderr and "the others are saved" not in r.stderr
    assert no_cells(out)
    listing = cli("datasets", "--dataset", str(recipe))
    assert listing.returncode == 0 and "Traceback" not in listing.stderr and "unavailable" in listing.stdout
    row = [line for line in listing.stdout.splitlines() if "unavailable" in line]
    assert len(row) == 1 and all(n in row[0] for n in needles[:1])


def test_a_missing_data_root_is_an_error(tmp_path):
    for args in (["run", "--methods", "pop", "--out", str(tmp_path / "o")], ["datasets", "--dataset", "ml-100k"]):
        r = cli(*args, "--data-root", str(tmp_path / "nowhere"))
        assert r.returncode == 2 and r.stderr.strip() == f"error: --data-root {tmp_path / 'nowhere'}: no such folder"


def test_too_few_items_for_the_negatives_names_the_item_count(tmp_path):
    recipe = atomic_dataset(tmp_path / "data")
    out = tmp_path / "out"
    r = cli("run", "--dataset", str(recipe), "--methods", "pop", "--negatives", "19", "--out", str(out))
    one_line(r, f"dataset t has {N_ITEMS} items", "asked for 19")
    assert no_cells(out)
    # a small --negatives works, and validation candidates follow what the dataset allows (not a fixed 99)
    ok = cli("run", "--dataset", str(recipe), "--methods", "pop", "--negatives", "3", "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    from bench.io import read_json
    [res] = [read_json(p) for p in out.rglob("result.json")]
    assert res["protocol"]["valid_negatives"] == N_ITEMS - 5 and res["protocol"]["early_stopping"].endswith(
        f"n{N_ITEMS - 5}")


def test_items_without_text_are_counted_and_warned(tmp_path):
    recipe = atomic_dataset(tmp_path / "data", item_lines=[f"i{i}\t" + ("" if i < 3 else f"Title {i}")
                                                           for i in range(N_ITEMS)])
    r = cli("run", "--dataset", str(recipe), "--methods", "pop", "--negatives", "3", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert f"warning: 3 of {N_ITEMS} items of dataset t have no text" in r.stderr
    assert "cli.py:" not in r.stderr and "runner.py:" not in r.stderr   # no source-location tags


def test_a_deterministic_cell_error_is_tried_once_and_leaves_no_cell(tmp_path, monkeypatch):
    from bench.errors import BenchError
    from bench.executors import run_local
    from bench.runner import Cell
    from methods.pop import Pop
    calls = []

    def broken(self, data):
        calls.append(1)
        raise BenchError("pop: the data cannot be used (a deterministic problem)")
    monkeypatch.setattr(Pop, "fit", broken)
    [outcome] = run_local([Cell("ml-100k", "pop", 0)], tmp_path, log=lambda m: None)
    assert outcome.status == "failed" and outcome.attempts == 1 and len(calls) == 1
    assert outcome.error == "pop: the data cannot be used (a deterministic problem)"
    assert not list(tmp_path.rglob("seed0")) and not list(tmp_path.rglob("failed.json"))


def test_candidate_and_cache_problems_take_the_one_line_path(tmp_path, tiny_ds, monkeypatch):
    """Errors in candidates, data preparation and scoring are BenchErrors (one line, not retried), not bare
    ValueError / FileNotFoundError / RuntimeError."""
    from bench.data import candidates, prepare
    from bench.errors import BenchError, DataFormatError
    path = candidates.candidates_path(tmp_path, tiny_ds, "test", "uniform", 5, 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz file")
    with pytest.raises(DataFormatError, match="cannot read the saved candidates") as exc:
        candidates.get_candidates(tmp_path, tiny_ds, "test", 5, "uniform", 0)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    for split, sampler in (("train", "uniform"), ("test", "hardest")):
        with pytest.raises(BenchError, match="valid: "):
            candidates.draw(tiny_ds, split, 5, sampler, 0)
    # a prepared-data cache left half-written is prepared again instead of failing
    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path / "cache"))
    from tests.conftest import tiny_recipe
    first = prepare.load_dataset(tiny_recipe())
    [folder] = (tmp_path / "cache" / "prepared").iterdir()
    (folder / "seqs.npz").unlink()
    again = prepare.load_dataset(tiny_recipe())
    assert again.fingerprint == first.fingerprint and len(again.seqs) == len(first.seqs)


def test_a_wrong_score_shape_is_a_method_error(tiny_ds):
    import numpy as np
    from bench.data.view import FitData
    from bench.errors import MethodError
    from bench.runner import score_sampled
    from methods.pop import Pop

    class Flat(Pop):
        def score(self, users, candidates, split="test"):
            return np.zeros(len(users))
    m = Flat().fit(FitData.from_dataset(tiny_ds))
    with pytest.raises(MethodError, match=r"score\(\) returned shape"):
        score_sampled(m, np.arange(3), np.zeros((3, 4), dtype=np.int64), "test")
