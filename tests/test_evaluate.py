import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.errors import InvariantError
from bench.evaluate import check_invariants, evaluate_full, evaluate_sampled, full_ranks, invariant_violations


def slow_metrics(scores, labels, ks=(1, 5, 10)):
    """Loop reference: pessimistic rank = negatives scored >= the positive."""
    out = {f"hr@{k}": [] for k in ks} | {f"ndcg@{k}": [] for k in ks} | {"mrr": [], "gauc": []}
    for s, l in zip(scores, labels):
        pos = s[l][0]
        negs = s[~l]
        rank = sum(1 for n in negs if n >= pos)
        for k in ks:
            out[f"hr@{k}"].append(1.0 if rank < k else 0.0)
            out[f"ndcg@{k}"].append(1.0 / np.log2(rank + 2) if rank < k else 0.0)
        out["mrr"].append(1.0 / (rank + 1))
        out["gauc"].append(roc_auc_score(l, s))
    return {k: float(np.mean(v)) for k, v in out.items()}


def make(U=300, C=101, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 20, (U, C)).astype(float) if ties else rng.random((U, C))
    labels = np.zeros((U, C), bool)
    labels[np.arange(U), rng.integers(0, C, U)] = True
    scores[labels] += 0.3 * ties  # a mildly informative scorer
    return scores, labels


@pytest.mark.parametrize("ties", [False, True])
def test_matches_sklearn_and_slow_loop(ties):
    scores, labels = make(ties=ties)
    ev = evaluate_sampled(scores, labels)
    assert ev.metrics["auc"] == pytest.approx(roc_auc_score(labels.ravel(), scores.ravel()), abs=1e-12)
    ref = slow_metrics(scores, labels)
    for key, value in ref.items():
        assert ev.metrics[key] == pytest.approx(value, abs=1e-12), key


def test_constant_scorer_does_not_look_good():
    scores = np.zeros((50, 100))
    labels = np.zeros((50, 100), bool)
    labels[:, 7] = True
    m = evaluate_sampled(scores, labels).metrics
    assert m["hr@10"] == 0.0 and m["ndcg@10"] == 0.0 and m["hr@1"] == 0.0
    assert m["mrr"] == pytest.approx(1 / 100)
    assert m["auc"] == 0.5 and m["gauc"] == 0.5


def test_perfect_and_random_scorers():
    scores, labels = make(U=2000, seed=1)
    perfect = np.where(labels, 2.0, scores)
    m = evaluate_sampled(perfect, labels).metrics
    assert all(m[k] == 1.0 for k in m)
    r = evaluate_sampled(scores, labels).metrics
    assert 0.45 < r["auc"] < 0.55 and 0.07 < r["hr@10"] < 0.13


def test_bad_scores_fail_loudly():
    scores, labels = make(U=10)
    scores[3, 4] = np.nan
    with pytest.raises(InvariantError, match="row 3"):
        evaluate_sampled(scores, labels)
    scores, labels = make(U=10)
    labels[2, :2] = True
    with pytest.raises(InvariantError, match="positive"):
        evaluate_sampled(scores, labels)
    with pytest.raises(InvariantError, match="shape"):
        evaluate_sampled(scores[:, :5], labels)


def test_full_ranking_equals_sampled_when_mask_leaves_the_candidates():
    rng = np.random.default_rng(3)
    U, I, C = 40, 200, 21
    full = rng.random((U, I))
    cands = np.stack([rng.choice(I, C, replace=False) for _ in range(U)])
    target = cands[:, 0]
    mask = np.ones((U, I), bool)
    np.put_along_axis(mask, cands, False, axis=1)
    r, n, g = full_ranks(full, target, mask)
    fm = evaluate_full(r, n, g).metrics
    sm = evaluate_sampled(np.take_along_axis(full, cands, 1), cands == target[:, None]).metrics
    for k in fm:
        if k != "auc":
            assert fm[k] == pytest.approx(sm[k], abs=1e-12), k
    assert fm["auc"] is None


def test_invariants_catch_the_papers_tallrec_row():
    # GANPrompt paper, Table 2 (Beauty), TALLRec row: NDCG@5 > HR@5 and MRR below its lower bound
    tallrec = {"auc": 0.702796, "hr@1": 0.265642, "hr@5": 0.425841, "hr@10": 0.471253, "ndcg@1": 0.265642,
               "ndcg@5": 0.438516, "ndcg@10": 0.481524, "mrr": 0.256842}
    bad = invariant_violations(tallrec)
    assert any("NDCG@5" in b for b in bad) and any("MRR" in b for b in bad)
    with pytest.raises(InvariantError):
        check_invariants(tallrec)
    scores, labels = make()
    check_invariants(evaluate_sampled(scores, labels).metrics)  # real results pass


def test_chance_metrics_match_a_random_scorer():
    from bench.evaluate import chance_metrics
    exact = chance_metrics(5)
    assert exact["hr@1"] == pytest.approx(0.2) and exact["hr@5"] == 1.0 and exact["auc"] == 0.5
    assert exact["ndcg@10"] == pytest.approx(np.mean([1 / np.log2(r + 2) for r in range(5)]))
    assert exact["mrr"] == pytest.approx(np.mean([1 / (r + 1) for r in range(5)]))
    rng = np.random.default_rng(0)
    labels = np.zeros((20000, 5), dtype=bool)
    labels[:, 0] = True
    sim = evaluate_sampled(rng.random((20000, 5)), labels).metrics
    for k in ("hr@1", "ndcg@5", "mrr", "gauc", "auc"):
        assert sim[k] == pytest.approx(exact[k], abs=0.01)
