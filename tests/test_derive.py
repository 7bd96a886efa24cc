import gzip

import pytest

from bench import api
from bench.derive import check_derived
from bench.errors import BenchError
from bench.io import read_json

SUB = "sampled-uniform-n99-u50"


def cells(root, tag):
    return {p.parent.relative_to(root / "ml-100k" / tag): p.parent
            for p in sorted((root / "ml-100k" / tag).rglob("result.json"))}


def test_derived_subsample_cell_equals_a_run_of_that_protocol(tmp_path):
    every, direct = tmp_path / "every", tmp_path / "direct"
    api.run(dataset="ml-100k", methods="random,pop", protocol="sampled", out=every)
    api.run(dataset="ml-100k", methods="random,pop", protocol=SUB, out=direct)
    written = api.derive("ml-100k", SUB, out=every)
    assert len(written) == 2
    mine, theirs = cells(every, SUB), cells(direct, SUB)
    assert mine.keys() == theirs.keys() and len(mine) == 2
    for key in mine:
        a, b = read_json(mine[key] / "result.json"), read_json(theirs[key] / "result.json")
        assert a["metrics"] == b["metrics"] and a["n_users"] == b["n_users"] == 50
        assert a["protocol"] == b["protocol"]   # the same candidate file, users and subsample seed
        assert a["derived"]["from"].startswith("ml-100k/sampled-uniform-n99/")
        assert gzip.decompress((mine[key] / "per_user.csv.gz").read_bytes()) == \
            gzip.decompress((theirs[key] / "per_user.csv.gz").read_bytes())
        assert check_derived(mine[key], a, every) == []
    # finished cells are skipped; the leaderboard says where the rows come from
    assert api.derive("ml-100k", SUB, out=every) == []
    from bench.report.leaderboard import build
    assert "these users' rows of its sampled-uniform-n99 cells" in build(every, "ml-100k", SUB).budgets["pop"]
    # the audit's check catches a derived file that no longer matches its source
    folder = next(iter(mine.values()))
    lines = gzip.decompress((folder / "per_user.csv.gz").read_bytes()).decode().splitlines()
    head, first = lines[0].split(","), lines[1].split(",")
    first[head.index("rank")] = str(int(first[head.index("rank")]) + 1)
    lines[1] = ",".join(first)
    (folder / "per_user.csv.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert "differ from the source cell" in check_derived(folder, read_json(folder / "result.json"), every)[0]
    failures = api.audit(every).failures
    assert [rel for rel, why in failures if "differ from the source cell" in why] == [
        str(folder.relative_to(every))]


@pytest.mark.parametrize("to, message", [
    ("full-u50", "derive needs a sampled protocol with a user subsample"),
    ("sampled-uniform-n99", "derive needs a sampled protocol with a user subsample"),
    ("sampled-uniform-n9-u50", "no sampled-uniform-n9 cells of ml-100k"),
])
def test_derive_refuses_what_it_cannot_give(tmp_path, to, message):
    api.run(dataset="ml-100k", methods="pop", protocol="sampled", out=tmp_path)
    with pytest.raises(BenchError, match=message):
        api.derive("ml-100k", to, out=tmp_path)
    with pytest.raises(BenchError, match="--methods sasrec: no sampled-uniform-n99 cell"):
        api.derive("ml-100k", SUB, methods=["sasrec"], out=tmp_path)
    next((tmp_path / "ml-100k" / "sampled-uniform-n99").rglob("per_user.npz")).unlink()
    with pytest.raises(BenchError, match="per_user.npz is missing"):
        api.derive("ml-100k", SUB, out=tmp_path)
