"""The one evaluator. Every method's scores become metrics here, the same way.

Tie policy: ranks are pessimistic: a negative with a score equal to the positive's counts as ranked above it, so a
method that gives every candidate the same score ranks the positive last (HR@10 = 0 with 100 candidates). AUC and
GAUC count a tie as half a correctly ordered pair (the Mann-Whitney convention, as scikit-learn's roc_auc_score), so
a constant scorer gets exactly 0.5, which is chance, not a good score.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from bench.errors import InvariantError

KS = (1, 5, 10)
METRIC_KEYS = ("auc", "gauc") + tuple(f"hr@{k}" for k in KS) + tuple(f"ndcg@{k}" for k in KS) + ("mrr",)


@dataclass
class Evaluation:
    metrics: dict[str, float | None]
    per_user: dict[str, np.ndarray]  # rank (0-based, pessimistic), n_neg, gauc, hr@k, ndcg@k, mrr per user


def _check_scores(scores: np.ndarray) -> None:
    if not np.all(np.isfinite(scores)):
        bad = np.argwhere(~np.isfinite(scores))[0]
        raise InvariantError(f"score at user row {bad[0]}, candidate {bad[1]} is {scores[tuple(bad)]}: "
                             "a method must give a finite score to every candidate")


def per_user_from_ranks(rank: np.ndarray, n_neg: np.ndarray, gauc: np.ndarray, ks=KS) -> dict[str, np.ndarray]:
    out = {"rank": rank.astype(np.int64), "n_neg": n_neg.astype(np.int64), "gauc": gauc.astype(np.float64)}
    disc = 1.0 / np.log2(rank + 2.0)
    for k in ks:
        hit = rank < k
        out[f"hr@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, disc, 0.0)
    out["mrr"] = 1.0 / (rank + 1.0)
    return out


def summarise(per_user: dict[str, np.ndarray], auc: float | None, ks=KS) -> dict[str, float | None]:
    metrics = {"auc": auc, "gauc": float(per_user["gauc"].mean())}
    for name in [f"hr@{k}" for k in ks] + [f"ndcg@{k}" for k in ks] + ["mrr"]:
        metrics[name] = float(per_user[name].mean())
    return metrics


def chance_metrics(n_candidates: int, ks=KS) -> dict[str, float]:
    """Expected metrics of untied random scores over 1 positive + (n_candidates - 1) negatives: the positive's rank is
    uniform on 0..n-1. The floor every sampled-protocol number should be read against."""
    rank = np.arange(n_candidates)
    n_neg = np.full(n_candidates, n_candidates - 1)
    gauc = 1.0 - rank / max(n_candidates - 1, 1)
    return summarise(per_user_from_ranks(rank, n_neg, gauc, ks), 0.5, ks)


def evaluate_sampled(scores: np.ndarray, labels: np.ndarray, ks=KS) -> Evaluation:
    """scores, labels: [U, C]; exactly one positive label per row."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise InvariantError(f"scores shape {scores.shape} does not match candidates shape {labels.shape}")
    npos = labels.sum(1)
    if not np.all(npos == 1):
        row = int(np.flatnonzero(npos != 1)[0])
        raise InvariantError(f"user row {row} has {npos[row]} positive candidates; the protocol has exactly 1")
    _check_scores(scores)
    rows = np.arange(len(scores))
    pos = scores[rows, labels.argmax(1)]
    greater = (scores > pos[:, None]).sum(1)
    ties = (scores == pos[:, None]).sum(1) - 1  # the positive equals itself
    n_neg = np.full(len(scores), scores.shape[1] - 1)
    gauc = (n_neg - greater - ties + 0.5 * ties) / n_neg
    per_user = per_user_from_ranks(greater + ties, n_neg, gauc, ks)
    metrics = summarise(per_user, pooled_auc(pos, scores[~labels]), ks)
    check_invariants(metrics, ks)
    return Evaluation(metrics, per_user)


def pooled_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC over all (positive, negative) pairs pooled across users. The negatives are sorted in chunks on parallel
    threads (numpy releases the GIL while sorting); each positive's count of lower negatives is a binary search
    per chunk, so no merged sort is ever needed."""
    chunks = np.array_split(neg, max(1, min(len(neg) // 1_000_000, os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        sorted_chunks = list(pool.map(np.sort, chunks))
    below = np.zeros(len(pos), dtype=np.int64)
    not_above = np.zeros(len(pos), dtype=np.int64)
    for chunk in sorted_chunks:
        below += np.searchsorted(chunk, pos, side="left")
        not_above += np.searchsorted(chunk, pos, side="right")
    wins = below.sum(dtype=np.float64) + 0.5 * (not_above - below).sum(dtype=np.float64)
    return float(wins / (len(pos) * len(neg)))


def full_ranks(scores: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chunk of full ranking. scores [B, I]; mask [B, I] True where an item is excluded (the user's history);
    the target is never excluded. Returns pessimistic rank, number of negatives and per-user AUC."""
    _check_scores(scores)
    rows = np.arange(len(scores))
    pos = scores[rows, target]
    valid = ~mask
    valid[rows, target] = False
    greater = ((scores > pos[:, None]) & valid).sum(1)
    ties = ((scores == pos[:, None]) & valid).sum(1)
    n_neg = valid.sum(1)
    gauc = (n_neg - greater - ties + 0.5 * ties) / np.maximum(n_neg, 1)
    return greater + ties, n_neg, gauc


def evaluate_full(rank: np.ndarray, n_neg: np.ndarray, gauc: np.ndarray, ks=KS) -> Evaluation:
    """Full ranking: pooled AUC is not reported (each user has a different candidate set); GAUC is."""
    per_user = per_user_from_ranks(rank, n_neg, gauc, ks)
    metrics = summarise(per_user, None, ks)
    check_invariants(metrics, ks)
    return Evaluation(metrics, per_user)


def invariant_violations(m: dict, ks=KS, tol: float = 1e-9) -> list[str]:
    """The invariants of ../shared/design/ganprompt-method.md (one positive per user)."""
    out = []
    def get(key):
        return m.get(key)
    for key in ("auc", "gauc") + tuple(f"hr@{k}" for k in ks) + tuple(f"ndcg@{k}" for k in ks) + ("mrr",):
        v = get(key)
        if v is not None and not (-tol <= v <= 1 + tol):
            out.append(f"{key}={v} is outside [0, 1]")
    if get("hr@1") is not None and get("ndcg@1") is not None and abs(m["hr@1"] - m["ndcg@1"]) > tol:
        out.append(f"HR@1={m['hr@1']} != NDCG@1={m['ndcg@1']}")
    for k in ks:
        hr, nd = get(f"hr@{k}"), get(f"ndcg@{k}")
        if hr is not None and nd is not None and nd > hr + tol:
            out.append(f"NDCG@{k}={nd} > HR@{k}={hr}")
    for a, b in zip(ks, ks[1:]):
        for name in ("hr", "ndcg"):
            va, vb = get(f"{name}@{a}"), get(f"{name}@{b}")
            if va is not None and vb is not None and vb < va - tol:
                out.append(f"{name.upper()}@{b}={vb} < {name.upper()}@{a}={va}")
    mrr, hr1 = get("mrr"), get("hr@1")
    if mrr is not None and hr1 is not None:
        if mrr < hr1 - tol:
            out.append(f"MRR={mrr} < HR@1={hr1}")
        for k in ks:
            hrk = get(f"hr@{k}")
            if k > 1 and hrk is not None and hr1 + (hrk - hr1) / k > mrr + tol:
                out.append(f"MRR={mrr} < HR@1 + (HR@{k} - HR@1)/{k} = {hr1 + (hrk - hr1) / k}")
    return out


def check_invariants(metrics: dict, ks=KS) -> None:
    bad = invariant_violations(metrics, ks)
    if bad:
        raise InvariantError("metric invariants violated: " + "; ".join(bad))
