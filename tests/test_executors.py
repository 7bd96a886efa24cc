"""Executors: a grid run under Ray, killed half-way and resumed, ends with the same results as an uninterrupted local
run; failed cells are reported and retried while the others go on; the status view."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from bench.executors import grid_status, run_local
from bench.io import read_json
from bench.runner import Cell

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--dataset", "ml-100k", "--methods", "random,pop,itemknn", "--seeds", "0,1", "--no-leaderboard"]


def metrics_by_cell(root: Path) -> dict:
    return {str(p.parent.relative_to(root)): read_json(p)["metrics"] for p in root.rglob("result.json")}


def test_ray_grid_killed_half_way_resumes_to_the_local_results(tmp_path):
    local, distributed = tmp_path / "local", tmp_path / "ray"
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    r = subprocess.run([sys.executable, str(ROOT / "bench.py"), "run", *GRID, "--out", str(local)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    expected = metrics_by_cell(local)
    assert len(expected) == 6

    cmd = [sys.executable, str(ROOT / "bench.py"), "run", *GRID, "--executor", "ray", "--out", str(distributed)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(distributed.rglob("result.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    proc.wait(timeout=60)
    half = metrics_by_cell(distributed)
    assert 2 <= len(half) < 6, f"the kill must land half-way, found {len(half)} finished cells"

    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("skip") >= len(half)
    assert metrics_by_cell(distributed) == expected


def test_failed_cell_is_retried_once_and_the_grid_goes_on(tmp_path, monkeypatch):
    from methods.pop import Pop
    calls = []

    def flaky(self, data):
        calls.append(1)
        raise RuntimeError("boom")
    monkeypatch.setattr(Pop, "fit", flaky)
    cells = [Cell("ml-100k", "pop", 0), Cell("ml-100k", "random", 0)]
    out = run_local(cells, tmp_path, log=lambda m: None)
    assert [o.status for o in out] == ["failed", "done"] and out[0].attempts == 2 and len(calls) == 2
    assert "boom" in out[0].error
    states = {r["cell"].split("/")[2]: r["state"] for r in grid_status(tmp_path)}
    assert states == {"pop": "failed", "random": "done"}
