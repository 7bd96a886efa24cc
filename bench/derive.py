"""Cells of a user-subsample protocol derived from finished all-users cells, without training or scoring again.

`sampled-uniform-n99-u300` scores, for the users that Protocol.user_rows draws with its fixed seed, the same rows
of the same saved candidate file that `sampled-uniform-n99` scores for every user. An all-users cell therefore holds
every score the subsample needs: its rows for those users, evaluated by the same evaluator, are the result a run
would write (tests/test_derive.py checks that the files are identical). This is how a baseline trained once on a
5-core set joins the leaderboard of the user subsample the LLM methods can afford.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.evaluate import evaluate_sampled
from bench.io import load_npz, sha256_file
from bench.protocol import Protocol
from bench.results import (COMPACT_FILE, check_publishable, git_state, is_finished, iter_results, read_compact,
                           write_cell)

NOT_DERIVED = ("schema_version", "created")


def source_protocol(target: Protocol) -> Protocol:
    """The all-users protocol whose cells hold `target`'s scores; one-line error where there is none."""
    if target.mode != "sampled" or not target.max_users:
        raise BenchError(f"--to {target.tag}: derive needs a sampled protocol with a user subsample (e.g. "
                         "sampled-uniform-n99-u300); a full ranking keeps no per-candidate scores to select from")
    return Protocol("sampled", target.sampler, target.n_negatives, None)


def derive_cell(source: Path, result: dict, target: Protocol, root: Path, git: dict) -> tuple[dict, dict]:
    """(result, per-user arrays) of `target` from the all-users cell in `source`."""
    npz = source / "per_user.npz"
    if not npz.is_file():
        raise BenchError(f"{npz} is missing: deriving needs the cell's scores (the git-ignored per_user.npz that a "
                         "run writes); run the cell again, or run the subsample protocol directly")
    z = load_npz(npz)
    n_users = int(result["dataset"]["stats"]["users"])
    if not np.array_equal(z["users"], np.arange(n_users)):  # user_rows indexes rows of the all-users file
        raise BenchError(f"{npz}: its users are not the dataset's {n_users} test users in order: not a cell of every "
                         "test user")
    rows = target.user_rows(n_users)
    picked = {k: z[k][rows] for k in ("users", "target", "candidates", "scores")}
    evaluation = evaluate_sampled(picked["scores"], picked["candidates"] == picked["target"][:, None])
    per_user = {**picked, **evaluation.per_user, "item_tokens": z["item_tokens"], "user_tokens": z["user_tokens"]}
    derived = {k: v for k, v in result.items() if k not in NOT_DERIVED}
    derived.update(
        protocol={**result["protocol"], **target.to_dict()},
        metrics=evaluation.metrics, n_users=int(len(rows)),
        derived={"from": os.path.relpath(source, root), "per_user_npz_sha256": sha256_file(npz),
                 "how": f"the rows of {target.tag}'s users in the source cell's scores, evaluated again; training, "
                        "provenance, answer counts and timings are the source's (every test user)",
                 "git": git})
    return derived, per_user


def derive(root, dataset: str, to: str, methods: list[str] | None = None, force: bool = False,
           log=None) -> list[Path]:
    """`bench.py derive`: write every missing cell of the protocol `to` that an all-users cell of `dataset` under
    `root` can give; returns the folders written."""
    root = Path(root)
    target = Protocol.from_tag(to)
    source = source_protocol(target)
    base = root / dataset / source.tag
    if not base.is_dir():
        raise BenchError(f"{base}: no {source.tag} cells of {dataset} to derive {target.tag} from")
    git = git_state()
    check_publishable(git, root)
    log = log or (lambda message: None)
    written, seen = [], set()
    for folder, result in iter_results(base):
        rel = folder.relative_to(base).parts  # <method>/<hash>/seed<N>
        if len(rel) != 3 or (methods and rel[0] not in methods):
            continue
        seen.add(rel[0])
        out = root / dataset / target.tag / Path(*rel)
        if not force and is_finished(out, result["dataset"]["fingerprint"]):
            log(f"skip {dataset} {'/'.join(rel)}: {target.tag} finished")
            continue
        derived, per_user = derive_cell(folder, result, target, root, git)
        write_cell(out, derived, per_user)
        written.append(out)
        log(f"derived {dataset} {'/'.join(rel)} {target.tag}: ndcg@10 {derived['metrics']['ndcg@10']:.4f}")
    missing = sorted(set(methods or ()) - seen)
    if missing:
        raise BenchError(f"--methods {', '.join(missing)}: no {source.tag} cell of {dataset} under {root}")
    return written


def check_derived(folder: Path, result: dict, root: Path) -> list[str]:
    """Audit: a derived cell's committed per-user rows must be exactly its source's rows for the same users."""
    src = root / result["derived"]["from"]
    if not (src / COMPACT_FILE).is_file() or not (folder / COMPACT_FILE).is_file():
        return [f"derived from {result['derived']['from']}, whose {COMPACT_FILE} is missing"]
    mine, theirs = read_compact(folder / COMPACT_FILE), read_compact(src / COMPACT_FILE)
    at = {u: i for i, u in enumerate(theirs["users"])}
    idx = np.array([at.get(u, -1) for u in mine["users"]])
    if (idx < 0).any():
        return [f"derived from {result['derived']['from']}, which lacks {int((idx < 0).sum())} of its users"]
    off = [k for k in ("rank", "n_neg", "gauc") if not np.array_equal(mine[k], theirs[k][idx])]
    return [f"per-user {', '.join(off)} differ from the source cell {result['derived']['from']}"] if off else []
