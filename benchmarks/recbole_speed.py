"""Harness overhead vs RecBole: train SASRec for a fixed number of epochs (validation every epoch) on the same data,
once through the harness (bench.run_cell path: RecBole model + epoch, harness validation and scoring) and once through
RecBole's own run_recbole, and print the time ratio (goal: harness <= 1.1x RecBole).
Run: python benchmarks/recbole_speed.py [--dataset ml-100k] [--epochs 2]"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.compat import apply, recbole_sandbox
from bench.data.candidates import draw
from bench.data.prepare import load_dataset
from bench.data.readers import write_atomic
from bench.method import get_method
from fitdata import fit_data


def run_harness(ds, epochs):
    data = fit_data(ds)
    test = draw(ds, "test", 99, "uniform", 0)
    t = time.perf_counter()
    m = get_method("sasrec")(epochs=epochs, patience=10_000).fit(data)
    m.score(test.users, test.items)
    return time.perf_counter() - t


def run_recbole_native(ds, epochs):
    apply()
    folder = tempfile.mkdtemp(prefix="recbole-native-")
    users = np.repeat(np.arange(ds.n_users), [len(s) for s in ds.seqs])
    inter = pd.DataFrame({"user_id": users.astype(str), "item_id": np.concatenate(ds.seqs).astype(str),
                          "timestamp": np.concatenate([np.arange(len(s)) for s in ds.seqs]).astype(float)})
    write_atomic(Path(folder) / "bench" / "bench.inter", inter,
                 {"user_id": "token", "item_id": "token", "timestamp": "float"})
    cwd = os.getcwd()
    os.chdir(folder)  # run_recbole writes ./log and ./saved
    try:
        with recbole_sandbox():
            from recbole.quick_start import run_recbole
            t = time.perf_counter()
            run_recbole(model="SASRec", dataset="bench", saved=False, config_dict={
                "data_path": folder, "epochs": epochs, "stopping_step": 10_000, "eval_step": 1,
                "train_neg_sample_args": None, "show_progress": False, "use_gpu": False, "state": "WARNING",
                "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
                "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}})
            return time.perf_counter() - t
    finally:
        os.chdir(cwd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    native = run_recbole_native(ds, args.epochs)
    harness = run_harness(ds, args.epochs)
    print(f"SASRec, {args.dataset}, {args.epochs} epochs with validation each epoch")
    print(f"RecBole run_recbole: {native:.1f} s   harness: {harness:.1f} s   ratio harness/RecBole: {harness / native:.2f}x")


if __name__ == "__main__":
    main()
