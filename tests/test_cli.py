import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "bench.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


@pytest.mark.parametrize("args, message", [
    (["run", "--dataset", "nope"], "unknown dataset 'nope'; valid:"),
    (["run", "--methods", "pop,nope"], "unknown method 'nope'; valid:"),
    (["run", "--profile", "huge"], "--profile 'huge': valid: quick, paper"),
    (["run", "--seeds", "a"], "--seeds 'a'"),
    (["run", "--methods", "sasrec", "--set", "sasrec.epochs=x"], "epochs='x' is not a valid int"),
    (["run", "--methods", "pop", "--set", "sasrec.epochs=1"], "not in --methods"),
    (["run", "--methods", "ganprompt", "--set", "ganprompt.decoder_tuning=bogus"],
     "decoder_tuning='bogus': valid: lora, full"),
    (["run", "--methods", "ganprompt", "--set", "ganprompt.backbone=gpt"], "backbone='gpt': valid: encoder+causal"),
    (["run", "--methods", "tallrec", "--set", "tallrec.loss=mse"], "loss='mse': valid: bce, softmax"),
    (["run", "--methods", "sasrec", "--set", "sasrec.epochs=0"], "epochs=0: must be >= 1"),
    (["run", "--protocol", "sampled-uniform-nx"], "protocol tag 'sampled-uniform-nx': expected"),
    (["run", "--protocol", "sampled-best-n5"], "sampler 'best'; valid: uniform, popularity"),
    (["robustness", "--dataset", "ml-100k", "--methods", "tallrec", "--set", "tallrec.template=tallrec-0"],
     "conflicts with --seen seen-0"),
    (["diversity", "--dataset", "ml-100k", "--method", "tallrec"], "the diversity analysis needs GANPrompt"),
    (["leaderboard", "--dataset", "toys", "--out", "/tmp/llmrec-empty"], "no results for dataset"),
    (["leaderboard", "--dataset", "nothing-here"], "unknown dataset"),
])
def test_bad_input_gets_one_line_error(args, message):
    r = cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_run_then_leaderboard(tmp_path):
    r = cli("run", "--dataset", "ml-100k", "--methods", "random,pop", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "| pop" in r.stdout and "done ml-100k pop seed 0" in r.stderr
    r2 = cli("run", "--dataset", "ml-100k", "--methods", "random,pop", "--out", str(tmp_path))
    assert r2.stderr.count("skip") == 2
    assert (tmp_path / "ml-100k" / "leaderboard-sampled-uniform-n99.md").is_file()
    r3 = cli("leaderboard", "--dataset", "ml-100k", "--target", "pop", "--out", str(tmp_path))
    assert r3.returncode == 0 and "Improvement (%)" in r3.stdout
    # an exact protocol tag beside the named modes: finished protocols are skipped, the new one runs
    r4 = cli("run", "--dataset", "ml-100k", "--methods", "pop", "--protocol", "sampled,sampled-popularity-n9-u50",
             "--out", str(tmp_path))
    assert r4.returncode == 0 and r4.stderr.count("skip") == 1, r4.stderr
    assert "done ml-100k pop seed 0 sampled-popularity-n9-u50" in r4.stderr
    # --dry-run lists finished and missing results, and a fit an interrupted run left resumable, and runs nothing
    fits = tmp_path / "ml-100k" / "fits" / "sasrec"
    r5 = cli("run", "--dataset", "ml-100k", "--methods", "pop,sasrec", "--seeds", "0,1", "--out", str(tmp_path),
             "--dry-run")
    assert r5.returncode == 0, r5.stderr
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[1:3]): [c.strip() for c in line.strip("|").split("|")]
            for line in r5.stdout.splitlines() if line.startswith("| ml-100k")}
    assert rows["pop", "0"][4:] == ["finished", "-", "-", "-", "-", "-"]
    # pop seed 1 has an estimate from seed 0's recorded fit time; sasrec has no finished seed, so none
    assert rows["pop", "1"][4:6] == ["to run", "none"] and float(rows["pop", "1"][6]) >= 0
    assert rows["pop", "1"][7] == "recorded" and rows["pop", "1"][9] == "recorded"  # same pairs as seed 0's
    assert rows["sasrec", "0"][4:] == ["to run", "none", "-", "-", "-", "-"]
    assert "1 of 4 results finished; 3 to run (3 fits)" in r5.stdout and not fits.exists()
    assert "2 fit(s) with no record yet" in r5.stdout
    from bench.method import get_method
    from bench.results import params_hash
    note = fits / params_hash(get_method("sasrec").from_profile("quick").get_params()) / ".seed0.resume" / "train"
    note.mkdir(parents=True)
    (note / "checkpoint.json").write_text('{"stage": "train", "epochs_done": 3, "saved": "now"}')
    r6 = cli("run", "--dataset", "ml-100k", "--methods", "sasrec", "--out", str(tmp_path), "--dry-run")
    assert "resumable (train: 3 epochs saved)" in r6.stdout, r6.stdout


def test_listing_commands():
    r = cli("methods")
    assert r.returncode == 0 and "sasrec" in r.stdout and "pop" in r.stdout
    r = cli("datasets", "--dataset", "ml-100k")
    assert r.returncode == 0 and "938" in r.stdout


def test_fit_estimate_scales_another_datasets_record_by_interactions(tmp_path):
    from bench.api import fit_minutes_estimates
    from bench.io import write_json

    def cell(dataset, seed, fit_s, interactions, method="hgn", h="abc", training=None):
        write_json(tmp_path / dataset / "sampled-uniform-n99" / method / h / f"seed{seed}" / "result.json",
                   {"dataset": {"name": dataset, "stats": {"interactions": interactions}},
                    "method": {"name": method, "params_hash": h}, "seed": seed,
                    "training": training or {}, "timings": {"fit_s": fit_s}})

    cell("small", 0, 600, 1000)
    cell("small", 1, 1200, 1000)                 # median of two seeds: 15 min
    cell("small", 2, 60, 1000, training={"resumed": [{"stage": "train", "from_epoch": 9}]})  # last run only: left out
    cell("huge", 0, 60000, 100000)               # farther in size than `small` from a 3000-interaction set
    est = fit_minutes_estimates(tmp_path, "mid", 3000)
    assert est["hgn", "abc"] == (45.0, "scaled from small x3")
    cell("mid", 0, 120, 3000)                    # a record on the dataset itself wins
    assert fit_minutes_estimates(tmp_path, "mid", 3000)["hgn", "abc"] == (2.0, "recorded")
    cell("mid", 0, 6, 3000, method="tallrec", h="gpu")   # a record made on a GPU says nothing of a CPU fit
    import json
    gpu = tmp_path / "mid" / "sampled-uniform-n99" / "tallrec" / "gpu" / "seed0" / "result.json"
    gpu.write_text(json.dumps({**json.loads(gpu.read_text()), "environment": {"device": "cuda:0"}}))
    assert ("tallrec", "gpu") not in fit_minutes_estimates(tmp_path, "mid", 3000)
    assert fit_minutes_estimates(tmp_path, "mid", 3000, device="cuda")["tallrec", "gpu"] == (0.1, "recorded")
    cell("small", 0, 600, 1000, method="ganprompt", h="lm")  # a fixed sample budget: not scaled by data size
    lm = tmp_path / "small" / "sampled-uniform-n99" / "ganprompt" / "lm" / "seed0" / "result.json"
    lm.write_text(json.dumps({**json.loads(lm.read_text()), "method": {"name": "ganprompt", "params_hash": "lm",
                                                                       "kind": "proposed"}}))
    assert ("ganprompt", "lm") not in fit_minutes_estimates(tmp_path, "mid", 3000)
    write_json(tmp_path / "legacy" / "sampled-uniform-n99" / "sasrec" / "x" / "seed0" / "result.json",
               {"dataset": {"name": "mid"}, "method": {"name": "sasrec", "params_hash": "x"}, "seed": 0,
                "training": {}, "timings": {"fit_s": 60}})  # outside <dataset>/<protocol>/...: not read
    assert ("sasrec", "x") not in fit_minutes_estimates(tmp_path, "mid", 3000)


def test_estimates_match_records_of_the_same_work_whatever_the_safety_stop(tmp_path):
    """Raising max_minutes (a safety stop, not a budget) changes the params hash but not the work: the dry-run still
    finds the records; a record the safety stop ended is a lower bound and says so."""
    from bench.api import _grid_results, _score_records, fit_minutes_estimates, score_minutes_estimate
    from bench.io import write_json
    from bench.results import params_hash, work_hash

    def cell(seed, params, fit_s, stopped=False, method="s3rec"):
        h = params_hash(params)
        write_json(tmp_path / "ds" / "full" / method / h / f"seed{seed}" / "result.json",
                   {"dataset": {"name": "ds", "stats": {"interactions": 1000, "items": 100}},
                    "protocol": {"mode": "full"}, "n_users": 10,
                    "method": {"name": method, "params_hash": h, "params": params}, "seed": seed,
                    "training": {"budget_stopped": stopped}, "timings": {"fit_s": fit_s, "score_s": 60.0}})

    base = {"epochs": 100, "lr": 1e-3}
    cell(0, {**base, "max_minutes": 60, "pretrain_max_minutes": 60}, 3600.0, stopped=True)
    raised = {**base, "max_minutes": 600, "pretrain_max_minutes": 600}
    wh = work_hash(raised, params_hash(raised))
    assert wh == work_hash({**base, "max_minutes": None, "pretrain_max_minutes": None}, "-") != params_hash(raised)
    assert work_hash({**base, "lr": 1e-2}, "-") != wh, "a change of work is another configuration"
    assert work_hash(None, "abc") == "abc", "cells that recorded no params keep their params hash"
    assert fit_minutes_estimates(tmp_path, "ds", 1000)["s3rec", wh] == (60.0, "recorded, budget-stopped: at least")
    assert fit_minutes_estimates(tmp_path, "big", 2000)["s3rec", wh] == (
        120.0, "scaled from ds x2, budget-stopped: at least")
    assert score_minutes_estimate(_score_records(_grid_results(tmp_path)), "s3rec", wh, "cpu", "full", 1000,
                                  "ds") == (1.0, "recorded")
    cell(1, raised, 7200.0)     # the same work under a raised stop: the median of both seeds, still a lower bound
    assert fit_minutes_estimates(tmp_path, "ds", 1000)["s3rec", wh] == (90.0, "recorded, budget-stopped: at least")
    cell(0, {**base, "lr": 1e-2}, 60.0, method="bpr")
    assert ("bpr", wh) not in fit_minutes_estimates(tmp_path, "ds", 1000)


def test_score_estimate_scales_seconds_per_scored_pair(tmp_path):
    """--dry-run's scoring estimate: a pointwise model's full ranking grows with users x items, which a fit-time
    estimate alone hides (DIN on beauty-5core: about 29 h of full-ranking scoring after a one-hour fit)."""
    from bench.api import _grid_results, _score_records, score_minutes_estimate
    from bench.io import write_json

    def cell(dataset, mode, users, items, score_s, method="din", h="abc", device="cpu"):
        proto = {"mode": mode, **({"n_negatives": 99} if mode == "sampled" else {})}
        tag = "full" if mode == "full" else "sampled-uniform-n99"
        write_json(tmp_path / dataset / tag / method / h / "seed0" / "result.json",
                   {"dataset": {"name": dataset, "stats": {"items": items}}, "protocol": proto, "n_users": users,
                    "method": {"name": method, "params_hash": h}, "seed": 0, "environment": {"device": device},
                    "timings": {"score_s": score_s}})

    cell("small", "full", 100, 1000, 600.0)         # 1e5 pairs in 10 min
    cell("small", "sampled", 100, 1000, 60.0)       # 1e4 pairs in 1 min
    records = _score_records(_grid_results(tmp_path))
    minutes, source = score_minutes_estimate(records, "din", "abc", "cpu", "full", 1000 * 10000, "big")
    assert minutes == pytest.approx(1000.0) and source == "scaled from small x1e+02 pairs"
    assert score_minutes_estimate(records, "din", "abc", "cpu", "sampled", 100 * 100, "small") == (1.0, "recorded")
    assert score_minutes_estimate(records, "din", "abc", "cuda:0", "full", 10, "small") is None  # other device
    assert score_minutes_estimate(records, "din", "other", "cpu", "full", 10, "small") is None   # other params
    cell("big", "full", 10, 1000, 6.0)                # a record on the planned dataset wins over a nearer one
    records = _score_records(_grid_results(tmp_path))
    minutes, source = score_minutes_estimate(records, "din", "abc", "cpu", "full", 100 * 1000, "big")
    assert minutes == pytest.approx(1.0) and source == "scaled from big x10 pairs"


def test_status_grid_lists_the_finished_seeds_of_each_configuration_per_protocol(tmp_path):
    from bench.api import seed_grid
    from bench.io import write_json

    def cell(dataset, tag, method, h, seed):
        write_json(tmp_path / dataset / tag / method / h / f"seed{seed}" / "result.json",
                   {"dataset": {"name": dataset}, "method": {"name": method, "params_hash": h}, "seed": seed})

    for seed in (2, 0, 1):
        cell("d", "full", "bpr", "aa", seed)
    cell("d", "sampled-uniform-n99", "bpr", "aa", 1)
    cell("d", "sampled-uniform-n99", "din", "bb", 0)
    cell("d", "sampled-uniform-n99", "tallrec", "t1", 0)
    cell("d", "sampled-uniform-n99", "tallrec", "t2", 1)          # two configurations: two rows, never merged
    cell("e", "full", "bpr", "cc", 0)
    (tmp_path / "d" / "full" / "din" / "bb" / "seed0").mkdir(parents=True)   # started, unfinished: not listed
    write_json(tmp_path / "d" / "robustness" / "sampled-uniform-n19" / "tallrec" / "t1" / "seed0" / "result.json",
               {"dataset": {"name": "d"}, "method": {"name": "tallrec", "params_hash": "t1"}, "seed": 0})
    grid = seed_grid(tmp_path).set_index(["dataset", "method"])
    assert list(grid.columns) == ["full", "sampled-uniform-n99"]
    assert grid.loc[("d", "bpr")].tolist() == ["0,1,2", "1"]
    assert grid.loc[("d", "din")].tolist() == ["-", "0"]
    assert grid.loc[("d", "tallrec[t1]"), "sampled-uniform-n99"] == "0"
    assert grid.loc[("d", "tallrec[t2]"), "sampled-uniform-n99"] == "1"
    assert grid.loc[("e", "bpr")].tolist() == ["0", "-"], "labels are per dataset: bpr has one configuration on e"
    assert len(seed_grid(tmp_path, "e")) == 1
    r = cli("status", "--grid", "--out", str(tmp_path), "--dataset", "d")
    assert r.returncode == 0 and "| d         | bpr         | 0,1,2  | 1                     |" in r.stdout, r.stdout
    r = cli("status", "--grid", "--out", str(tmp_path / "none"))
    assert r.returncode != 0 and "no finished cells under" in r.stderr
