"""A notebook-style tour of bench.api: train two methods on MovieLens-100K, then build the leaderboard and a
significance report from the stored results, without the command line.

    python examples/quickstart.py [OUT]     # OUT: a run folder (default: a fresh temporary folder)

Each block below is what a notebook cell would hold."""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench import api  # noqa: E402

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="llmrec-quickstart-"))

# %% Train: one cell per (dataset, method, seed), scored on 1 positive + 99 uniform negatives per user.
# pop needs no training; sasrec with 1 epoch would take a few minutes on a CPU, so the tour uses random and pop.
run = api.run(dataset="ml-100k", methods=["random", "pop"], seeds=[0], protocol="sampled", negatives=99, out=out)
assert not run.failed, run.failed
print(run.table[["method", "seed", "protocol", "status", "hr@10", "ndcg@10", "mrr"]].to_string(index=False))

# %% Leaderboard: mean over seeds per method, with † where a method beats the best other baseline significantly.
board = api.leaderboard("ml-100k", protocol="sampled-uniform-n99", target="pop", out=out)
print(board.table.round(4).to_string())
print("leaderboard files:", ", ".join(p.name for p in board.written))

# %% Significance: paired per-user tests of each method against the best other one.
report = api.significance("ml-100k", protocol="sampled-uniform-n99", metric="ndcg@10", out=out)
print(report.rows[["method", "reference", "n_users", "diff", "ci_low", "ci_high", "holm_p", "verdict"]]
      .to_string(index=False))
print("significance files:", ", ".join(p.name for p in report.written))
