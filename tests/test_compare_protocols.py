import pytest

from bench.errors import BenchError
from bench.report.protocols import compare, write
from bench.results import Protocol
from bench.runner import Cell, run_cell

PROTOCOLS = (Protocol("full"), Protocol("sampled", "uniform", 99), Protocol("sampled", "popularity", 99))


def test_compare_protocols_orders_and_taus(tmp_path):
    name = "ml-100k"
    for m in ("random", "pop", "itemknn"):
        run_cell(Cell(name, m, 0, PROTOCOLS, overrides={"epochs": 1} if m == "itemknn" else {}), tmp_path,
                 log=lambda s: None)
    table = compare(tmp_path, name, ["random", "pop", "itemknn"], metric="hr@10")
    assert list(table.values.columns) == [p.tag for p in PROTOCOLS]
    # random is last under full ranking and uniform negatives (under popularity negatives pop itself suffers)
    assert (table.ranks.loc["random", ["full", "sampled-uniform-n99"]] == 3).all()
    assert len(table.taus) == 3 and table.taus["kendall tau"].between(-1, 1).all()
    paths = write(table, tmp_path, name)
    assert all(p.is_file() for p in paths) and "Kendall tau" in paths[0].read_text()
    with pytest.raises(BenchError, match="no stored result for sasrec"):
        compare(tmp_path, name, ["random", "sasrec"])
