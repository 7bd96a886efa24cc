"""Run cells: (dataset recipe, method + params, seed, protocol) -> a finished results folder, or a skip if done."""
from __future__ import annotations

import os
import random
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.data.candidates import check_negatives, get_candidates, max_negatives
from bench.data.prepare import SeqDataset, load_dataset
from bench.data.view import FitData
from bench.evaluate import Evaluation, evaluate_full, evaluate_sampled, full_ranks
from bench.errors import BenchError, MethodError
from bench.fits import fit_dir, fit_or_load, resume_dir
from bench.method import Method, get_method
from bench.io import sha256_file, write_json
from bench.protocol import Protocol
from bench.results import (cell_dir, check_publishable, environment, git_state, is_finished, is_published,
                           params_hash, write_cell)
from bench.resume import resume_key
from bench.training import budget_stopped, recording_budget_stops

SCORE_BATCH = 512  # users per score() call in sampled mode
FULL_BATCH = 256   # users per score_full() call: 256 x 18k items x 8 bytes ~ 37 MB, far inside 4 GiB


@dataclass
class Cell:
    dataset: str
    method: str
    seed: int = 0
    protocols: tuple[Protocol, ...] = (Protocol(),)
    profile: str = "quick"
    overrides: dict[str, Any] = field(default_factory=dict)
    variants: tuple | None = None  # prompt variants (robustness suite): each scored with the same trained model
    include: tuple[str, ...] = ()  # plugin paths the method may come from (a Ray worker loads them too)

    def load_plugins(self) -> None:
        from bench.plugins import include
        for path in self.include:
            include(path)

    def build_method(self) -> Method:
        self.load_plugins()
        return get_method(self.method).from_profile(self.profile, **self.overrides)


THREADS_ENV = "LLMREC_TORCH_THREADS"


def torch_threads() -> int:
    """Intra-op threads for training and scoring: 1 unless $LLMREC_TORCH_THREADS says otherwise. A fixed count, not
    the machine's core count, because float reductions split over another number of threads can round differently;
    and 1 because on a shared 2-core machine two spinning threads per job slowed SASRec 2.6x (11.6 vs 4.4 s per
    batch of 256 on ml-100k at load average 10, measured with /tmp timing script, issue 12)."""
    text = os.environ.get(THREADS_ENV, "1")
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise BenchError(f"${THREADS_ENV}={text!r}: expected a positive integer")
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
        torch.manual_seed(seed)
        torch.set_num_threads(torch_threads())
    except ImportError:
        pass


# Early stopping always uses these validation candidates, whatever the test protocols: the trained model does not
# depend on how it is tested, so one fit serves every protocol of a cell. Datasets too small for 99 negatives per
# user get as many as every user can have (`valid_protocol`); the result records which.
VALID_PROTOCOL = Protocol("sampled", "uniform", 99)


def valid_protocol(ds: SeqDataset) -> Protocol:
    return Protocol("sampled", "uniform", min(VALID_PROTOCOL.n_negatives, max_negatives(ds)))


def items_without_text(ds: SeqDataset) -> int:
    return sum(1 for t in ds.item_text if not str(t).strip())


def score_sampled(method: Method, users: np.ndarray, items: np.ndarray, split: str,
                  batch: int = SCORE_BATCH, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    out = []
    for start in range(0, len(users), batch):
        sl = slice(start, start + batch)
        s = np.asarray(method.score(users[sl], items[sl], split=split))
        if s.shape != items[sl].shape:
            raise MethodError(f"method {method.name}: score() returned shape {s.shape}, expected {items[sl].shape}")
        out.append(s)
        if on_batch:
            on_batch(len(users[sl]))
    return np.concatenate(out)


def evaluate_method_full(method: Method, data: FitData, ds: SeqDataset, split: str, users: np.ndarray,
                         batch: int = FULL_BATCH, on_batch: Callable[[int], None] | None = None
                         ) -> tuple[Evaluation, np.ndarray]:
    target = np.array([ds.seqs[u][-1] if split == "test" else ds.seqs[u][-2] for u in users], dtype=np.int64)
    ranks, negs, gaucs = [], [], []
    for start in range(0, len(users), batch):
        u = users[start:start + batch]
        scores = np.asarray(method.score_full(u, split=split), dtype=np.float64)
        mask = np.zeros((len(u), ds.n_items), dtype=bool)
        for row, user in enumerate(u):
            mask[row, data.history(int(user), split)] = True
        r, n, g = full_ranks(scores, target[start:start + batch], mask)
        ranks.append(r), negs.append(n), gaucs.append(g)
        if on_batch:
            on_batch(len(u))
    return evaluate_full(np.concatenate(ranks), np.concatenate(negs), np.concatenate(gaucs)), target


def run_cell(cell: Cell, root: Path, data_root=None, force: bool = False,
             log: Callable[[str], None] = print, on_progress: Callable[[str, int, int], None] | None = None
             ) -> list[tuple[str, dict | None, Path]]:
    """Train the cell's method once and score it under each of the cell's protocols (one results folder each).
    Returns, per protocol, ("skipped" | "done", result, folder); finished protocols are skipped."""
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    git_start = git_state()   # provenance of the code that runs, taken before any work
    check_publishable(git_start, root)
    cell.load_plugins()  # before the dataset: a plugin may bring its recipe
    ds = load_dataset(cell.dataset, data_root=data_root)
    method = cell.build_method()
    params = method.get_params()
    if cell.variants is None:
        targets = [(p, None, cell_dir(root, ds.name, p, cell.method, params, cell.seed)) for p in cell.protocols]
    else:
        if not method.implements("set_prompt"):
            raise MethodError(f"method {method.name} does not read prompts; the robustness suite applies to "
                              "prompt-based methods")
        targets = [(p, v, cell_dir(Path(root) / ds.name / "robustness", None, p, cell.method, params, cell.seed)
                    / v.id) for p in cell.protocols for v in cell.variants]
    folders = [f for _, _, f in targets]
    pending = [i for i, f in enumerate(folders) if force or not is_finished(f, ds.fingerprint)]
    out = [("skipped", None, f) for f in folders]
    if not pending:
        return out
    for i in pending:
        if targets[i][0].mode == "full" and not method.supports_full:
            raise MethodError(f"method {method.name} does not support full ranking")
        if targets[i][0].mode == "sampled":
            check_negatives(ds, targets[i][0].n_negatives)
    provenance = {"taken": "cell start", "started": started, **git_start}
    for i in pending:
        mark_running(folders[i])
    try:
        fitted = fit_cell(cell, root, ds, method, refit=force, provenance=provenance, log=log)
        for i in pending:
            protocol, variant, folder = targets[i]
            if variant is not None:
                fitted.method.set_prompt(variant.template, variant.style)
            progress = (lambda n, p=protocol: on_progress("score", n, len(p.user_rows(ds.n_users)))
                        if on_progress else None)
            answers = fitted.method.answer_counter()
            if answers is not None:
                answers.reset()  # validation scoring during fit counted too
            scored = SCORERS[protocol.mode](fitted, ds, root, protocol, progress)
            result = result_record(fitted, scored, protocol, variant, t_start)
            write_cell(folder, result, scored.per_user)
            (folder / "failed.json").unlink(missing_ok=True)
            out[i] = ("done", result, folder)
    except BaseException as exc:
        for i in pending:
            if out[i][0] != "done" and not isinstance(exc, BenchError):
                mark_failed(folders[i], exc)
        raise
    finally:
        for i in pending:
            (folders[i] / "running.json").unlink(missing_ok=True)
            if out[i][0] != "done":
                _remove_empty(folders[i], Path(root))
    return out


def _remove_empty(folder: Path, root: Path) -> None:
    """A deterministic error (bad input) leaves no partial cell behind: drop the cell's folders if nothing is in
    them (a crash keeps its failed.json for `bench.py status`)."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def provenance_git(provenance: dict) -> dict:
    return {k: provenance.get(k) for k in ("commit", "dirty", "diff_sha256")}


def mark_running(folder: Path) -> None:
    write_json(folder / "running.json", {"pid": os.getpid(), "host": socket.gethostname(),
                                         "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def mark_failed(folder: Path, exc: BaseException) -> None:
    write_json(folder / "failed.json", {"error": f"{type(exc).__name__}: {exc}"[:2000],
                                        "traceback": traceback.format_exc()[-4000:],
                                        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


@dataclass
class Fitted:
    """A cell's method after fit (or after loading its saved fit), and what every protocol's result shares."""
    cell: Cell
    method: Method
    data: FitData
    fit: dict            # fit_or_load's {"fit_s", "load_s", "reused_from", "fit_s_earlier_runs"}
    common: dict         # the result.json sections every protocol of the cell shares
    valid: dict          # the protocol record of the early-stopping candidates


@dataclass
class Scored:
    """One protocol's scores, evaluated: the metrics, the per-user arrays written beside them, and timings."""
    evaluation: Evaluation
    per_user: dict[str, np.ndarray]
    protocol_info: dict  # what this mode adds to the protocol record (candidate file and its hash)
    score_s: float
    eval_s: float


def fit_cell(cell: Cell, root: Path, ds: SeqDataset, method: Method, refit: bool = False,
             provenance: dict | None = None, log: Callable[[str], None] = print) -> Fitted:
    """Fit once (or load the saved fit, for methods that can save one) on the fixed validation candidates."""
    params = method.get_params()
    vp = valid_protocol(ds)
    valid_c, valid_path = get_candidates(root, ds, "valid", vp.n_negatives, vp.sampler, cell.seed)
    data = FitData.from_dataset(ds, valid_candidates=valid_c, seed=cell.seed, log=log)
    if provenance is None:
        provenance = {"taken": "cell start", **git_state()}
    folder = fit_dir(root, ds.name, cell.method, params, cell.seed)
    data.resume_dir = resume_dir(folder)   # epoch checkpoints of a fit that outlives a session (bench.resume)
    data.resume_key = resume_key(ds.fingerprint, params, cell.seed, provenance_git(provenance))
    seed_everything(cell.seed)
    with recording_budget_stops() as stops:
        method, fit = fit_or_load(method, data, folder, ds.fingerprint, refit=refit, log=log)
    fit_info = dict(method.fit_info_)
    if is_published(root):  # the code must not have changed while the cell ran
        end = git_state()
        if (end.get("commit"), end.get("dirty")) != (provenance.get("commit"), provenance.get("dirty")):
            raise BenchError(f"refusing to publish into {root}: the working tree changed while the cell ran "
                             f"(commit {provenance.get('commit')} at the start, {end.get('commit')} dirty="
                             f"{end.get('dirty')} at the end)")
    common = {
        "dataset": {"name": ds.name, "fingerprint": ds.fingerprint, "recipe": ds.recipe, "stats": ds.stats(),
                    "text_source": ds.text_source, "items_without_text": items_without_text(ds)},
        "method": {"name": method.name, "kind": method.kind, "profile": cell.profile, "params": params,
                   "params_hash": params_hash(params), "overrides": cell.overrides},
        "seed": cell.seed,
        "training": {**fit_info,
                     "budget_stopped": budget_stopped(fit_info, stops),
                     "budget_stops": list(stops),
                     "fit_reused_from": os.path.relpath(fit["reused_from"], root) if fit["reused_from"] else None},
        "provenance": provenance,
        "environment": environment(method.device_, git=provenance_git(provenance)),
    }
    valid = {"valid_candidates_file": str(valid_path.relative_to(root)), "early_stopping": vp.tag,
             "valid_negatives": vp.n_negatives}
    return Fitted(cell, method, data, fit, common, valid)


def score_sampled_protocol(fitted: Fitted, ds: SeqDataset, root: Path, protocol: Protocol,
                           on_batch: Callable[[int], None] | None = None) -> Scored:
    """Score the saved test candidates of `protocol` (its user subsample) and evaluate them."""
    t0 = time.perf_counter()
    test_c, test_path = get_candidates(root, ds, "test", protocol.n_negatives, protocol.sampler, fitted.cell.seed)
    test_c = test_c.subset(protocol.user_rows(ds.n_users))
    scores = score_sampled(fitted.method, test_c.users, test_c.items, "test", on_batch=on_batch)
    score_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = evaluate_sampled(scores, test_c.labels)
    per_user = {"users": test_c.users, "target": test_c.target, "candidates": test_c.items, "scores": scores}
    info = {"candidates_file": str(test_path.relative_to(root)), "candidates_sha256": sha256_file(test_path)}
    return Scored(ev, per_user, info, score_s, time.perf_counter() - t0)


def score_full_protocol(fitted: Fitted, ds: SeqDataset, root: Path, protocol: Protocol,
                        on_batch: Callable[[int], None] | None = None) -> Scored:
    """Rank every item for the protocol's users (their earlier items masked) and evaluate the ranks."""
    t0 = time.perf_counter()
    users = protocol.user_rows(ds.n_users)
    ev, target = evaluate_method_full(fitted.method, fitted.data, ds, "test", users, on_batch=on_batch)
    # evaluation happens inside the batched ranking; its time is counted as scoring
    return Scored(ev, {"users": users, "target": target}, {}, time.perf_counter() - t0, 0.0)


SCORERS = {"sampled": score_sampled_protocol, "full": score_full_protocol}


def result_record(fitted: Fitted, scored: Scored, protocol: Protocol, variant, t_start: float) -> dict:
    """result.json of one protocol (and prompt variant) of a fitted cell; `scored.per_user` gains the token lists."""
    per_user = scored.per_user
    per_user.update(scored.evaluation.per_user)
    per_user["item_tokens"] = np.array(fitted.data.item_tokens)
    per_user["user_tokens"] = np.array(fitted.data.user_tokens)
    info = {**protocol.to_dict(), **scored.protocol_info, "seed": fitted.cell.seed, "split": "test",
            "leave_one_out": "last item test, second-last validation", **fitted.valid,
            "tie_policy": "ranks pessimistic (ties count against the positive); AUC/GAUC count ties as 1/2"}
    if variant is not None:
        info["prompt"] = {"variant": variant.id, "level": variant.level, "template": variant.template.id,
                          "text": variant.template.text, "answer_cue": variant.template.answer_cue,
                          "answers": list(variant.template.answers), "style": variant.style}
    answers = fitted.method.answer_counter()
    return {**fitted.common, "protocol": info, "metrics": scored.evaluation.metrics,
            "n_users": int(len(per_user["users"])),
            "answers": answers.as_dict() if answers is not None else None,
            "timings": {"fit_s": fitted.fit["fit_s"], "fit_s_earlier_runs": fitted.fit.get("fit_s_earlier_runs"),
                        "fit_load_s": fitted.fit["load_s"], "score_s": scored.score_s,
                        "eval_s": scored.eval_s, "total_s": time.perf_counter() - t_start}}
