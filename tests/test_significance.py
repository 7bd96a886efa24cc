import numpy as np
import pytest

from bench.errors import BenchError
from bench.io import write_json
from bench.results import write_compact
from bench.report.significance import compare, holm, load_per_user, paired_test

PROTO = "sampled-uniform-n99"
PER_USER_KEYS = ("gauc", "hr@1", "hr@5", "hr@10", "ndcg@1", "ndcg@5", "ndcg@10", "mrr")


def fake(root, method, seed, values, kind="baseline", params_hash="abcd1234", users=None):
    """A finished result folder with its compact per-user file: a user with value v (clipped to [0, 1]) ranks the
    positive at round(20 (1 - v)) of 100 candidates, so a higher value is a better per-user metric."""
    values = np.clip(values, 0.0, 1.0)
    users = np.arange(len(values)) if users is None else users
    folder = root / "d" / PROTO / method / params_hash / f"seed{seed}"
    rank = np.rint(20 * (1 - values)).astype(np.int64)
    write_compact(folder / "per_user.csv.gz", np.asarray(users).astype(str), rank, np.full(len(rank), 99),
                  1 - rank / 99)
    metrics = {"auc": float(values.mean()), **{k: float(values.mean()) for k in PER_USER_KEYS}}
    write_json(folder / "result.json", {"method": {"name": method, "kind": kind, "params_hash": params_hash},
                                        "seed": seed, "metrics": metrics, "dataset": {"fingerprint": "f"}})


def noisy(seed, shift=0.0, n=2000):
    return 0.5 + shift + np.random.default_rng(seed).normal(0, 0.2, n)


def test_identical_values_are_not_significant_and_zero_differences_give_p_1():
    a = noisy(0)
    r = paired_test(a, a.copy())
    assert r["diff"] == 0 and r["t_p"] == 1.0 and r["wilcoxon_p"] == 1.0
    assert r["effect_size"] == 0.0 and r["ci_low"] == r["ci_high"] == 0.0 and r["n"] == 2000


def test_same_distribution_independent_noise_is_not_significant():
    r = paired_test(noisy(0), noisy(1))
    assert r["t_p"] > 0.05 and r["wilcoxon_p"] > 0.05 and r["ci_low"] < 0 < r["ci_high"]


def test_clearly_better_is_significant():
    a = noisy(0)
    r = paired_test(a, a + 0.05 + np.random.default_rng(1).normal(0, 0.2, len(a)))
    assert r["t_p"] < 1e-4 and r["wilcoxon_p"] < 1e-4 and 0 < r["ci_low"] < 0.05 < r["ci_high"]
    assert r["effect_size"] > 0 and r["improvement_pct"] == pytest.approx(100 * r["diff"] / r["mean_a"])


def test_holm_hand_computed():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])   # capped at 1
    assert holm([]) == []


def test_bootstrap_ci_is_deterministic_for_a_seed():
    a, b = noisy(0), noisy(1, 0.01)
    r1, r2, r3 = paired_test(a, b, seed=7), paired_test(a, b, seed=7), paired_test(a, b, seed=8)
    assert (r1["ci_low"], r1["ci_high"]) == (r2["ci_low"], r2["ci_high"])
    assert (r1["ci_low"], r1["ci_high"]) != (r3["ci_low"], r3["ci_high"])


def test_end_to_end_better_method_gets_a_dagger(tmp_path):
    base = noisy(0)
    for seed in (0, 1):
        fake(tmp_path, "pop", seed, base + np.random.default_rng(10 + seed).normal(0, 0.05, len(base)))
        fake(tmp_path, "pop_copy", seed, base + np.random.default_rng(20 + seed).normal(0, 0.05, len(base)))
        fake(tmp_path, "ours", seed, base + 0.05 + np.random.default_rng(30 + seed).normal(0, 0.2, len(base)),
             kind="proposed")
    rep = compare(tmp_path, "d", metric="ndcg@10")
    rows = rep.rows.set_index("method")
    assert rows.at["ours", "verdict"] == "better" and rows.at["ours", "ci_low"] > 0
    assert rows.at["ours", "n_seeds"] == 2 and rows.at["ours", "n_users"] == 2000
    assert rows.at["pop_copy", "verdict"] == "n.s."
    assert rep.marks() == {"ours": "†"}
    assert (rep.rows["holm_p"] >= rep.rows["wilcoxon_p"]).all()
    md = rep.to_markdown()
    assert "better †" in md and "Holm" in md and "alpha = 0.05" in md and "GAUC stands in for AUC" in md
    paths = rep.write(tmp_path / "out")
    assert [p.name for p in paths] == [f"significance-{PROTO}-ndcg@10.md", f"significance-{PROTO}-ndcg@10.csv"]
    assert all(p.is_file() and p.parent.name == "d" for p in paths)
    assert compare(tmp_path, "d", metric="auc").metric == "gauc"
    assert len(compare(tmp_path, "d", all_pairs=True, test="ttest").rows) == 3
    vs_ours = compare(tmp_path, "d", reference="ours")
    worse = vs_ours.rows.set_index("method")
    assert worse.at["pop", "verdict"] == "worse"
    # other comparisons get their own files instead of overwriting the best-baseline report
    assert vs_ours.write(tmp_path / "out")[0].name == f"significance-{PROTO}-ndcg@10-vs-ours.md"


def test_identical_copies_end_to_end_are_not_significant_and_labels_carry_hashes(tmp_path):
    v = noisy(0)
    fake(tmp_path, "pop", 0, v, params_hash="aaaa0000")
    fake(tmp_path, "pop", 0, v, params_hash="bbbb1111")
    per_user = load_per_user(tmp_path, "d", PROTO, "ndcg@10")
    assert set(per_user) == {"pop[aaaa0000]", "pop[bbbb1111]"}
    rep = compare(tmp_path, "d")
    assert (rep.rows["verdict"] == "n.s.").all() and (rep.rows["holm_p"] == 1.0).all() and rep.marks() == {}


def test_users_are_aligned_by_id(tmp_path):
    v = noisy(0, n=50)
    fake(tmp_path, "a", 0, v, users=np.arange(50))
    ub = np.arange(10, 60)[::-1]                          # shifted user set, stored in another order
    fake(tmp_path, "b", 0, np.where(ub < 50, v[np.minimum(ub, 49)], 0.0), users=ub)   # same value per shared id
    row = compare(tmp_path, "d", reference="a").rows.iloc[0]
    assert row["n_users"] == 40 and row["diff"] == 0 and row["verdict"] == "n.s."


def test_errors_are_one_line(tmp_path):
    with pytest.raises(BenchError, match="no results for dataset 'd'") as e:
        compare(tmp_path, "d")
    assert "\n" not in str(e.value)
    fake(tmp_path, "a", 0, noisy(0, n=10), users=np.arange(10))
    fake(tmp_path, "b", 0, noisy(1, n=10), users=np.arange(10) + 100)
    with pytest.raises(BenchError, match="disjoint user sets"):
        compare(tmp_path, "d", reference="a")
    with pytest.raises(BenchError, match="reference method 'x'"):
        compare(tmp_path, "d", reference="x")
    with pytest.raises(BenchError, match="unknown metric"):
        compare(tmp_path, "d", metric="recall@10")
    with pytest.raises(BenchError, match="unknown test"):
        compare(tmp_path, "d", test="anova")


def test_a_methods_subset_is_its_own_holm_family_and_file(tmp_path):
    """An ablation table: each ablation against the full method, Holm over those comparisons alone."""
    fake(tmp_path, "full", 0, noisy(0, 0.05, n=300), kind="proposed")
    fake(tmp_path, "abl-a", 0, noisy(1, 0.0, n=300), kind="proposed")
    fake(tmp_path, "abl-b", 0, noisy(2, 0.05, n=300), kind="proposed")
    fake(tmp_path, "other", 0, noisy(3, 0.3, n=300))
    every = compare(tmp_path, "d", PROTO, "ndcg@10", reference="full", n_boot=50)
    sub = compare(tmp_path, "d", PROTO, "ndcg@10", reference="full", n_boot=50, methods=["abl-a", "abl-b"])
    assert set(every.rows["method"]) == {"abl-a", "abl-b", "other"} and set(sub.rows["method"]) == {"abl-a", "abl-b"}
    # Holm over 2 comparisons instead of 3: the smallest p is multiplied by 2, not 3
    p_min = sub.rows["wilcoxon_p"].min()
    assert sub.rows["holm_p"].min() == pytest.approx(min(1.0, 2 * p_min))
    assert every.rows.set_index("method").at["abl-a", "holm_p"] >= sub.rows.set_index("method").at["abl-a", "holm_p"]
    a, b = every.write(tmp_path / "out"), sub.write(tmp_path / "out")
    assert not set(a) & set(b), "the subset's report never overwrites the full comparison's"
    with pytest.raises(BenchError, match="--methods nope: no result"):
        compare(tmp_path, "d", PROTO, "ndcg@10", reference="full", methods=["nope"])


def test_a_reference_with_several_configurations_must_be_named_by_its_label(tmp_path):
    fake(tmp_path, "full", 0, noisy(0, 0.05, n=100), params_hash="aaaa0000", kind="proposed")
    fake(tmp_path, "full", 0, noisy(1, 0.10, n=100), params_hash="bbbb1111", kind="proposed")
    fake(tmp_path, "abl", 0, noisy(2, 0.0, n=100), kind="proposed")
    for methods in (None, ["abl"]):
        with pytest.raises(BenchError, match=r"several configurations .* full\[aaaa0000\], full\[bbbb1111\]") as e:
            compare(tmp_path, "d", reference="full", methods=methods, n_boot=20)
        assert "\n" not in str(e.value)
    rep = compare(tmp_path, "d", reference="full[aaaa0000]", methods=["abl"], n_boot=20)
    assert list(rep.rows["method"]) == ["abl"] and set(rep.rows["reference"]) == {"full[aaaa0000]"}
    assert rep.comparison.startswith("vs-full-aaaa0000-subset-"), "no glob brackets in the file name"


def test_every_metric_from_one_load_pools_seeds_per_user_by_token(tmp_path):
    """compare_metrics (what a leaderboard's marks use) against a pandas computation of the same thing: each user's
    value averaged over the seeds that all scored them, paired with the reference by token, in token order. One
    method's seeds store the same users in another order and one seed lacks users (the slow path), the other's
    seeds are identical user lists (the fast path)."""
    from bench.report.significance import compare_metrics
    import pandas as pd
    users = np.array([f"u{i:03d}" for i in range(120)])
    rng = np.random.default_rng(5)
    fake(tmp_path, "ref", 0, noisy(0, n=120), users=users)
    fake(tmp_path, "ref", 1, noisy(1, n=120), users=users)
    perm = rng.permutation(120)
    fake(tmp_path, "ours", 0, noisy(2, 0.1, n=120)[perm], users=users[perm], kind="proposed")
    fake(tmp_path, "ours", 1, noisy(3, 0.1, n=110), users=users[10:], kind="proposed")
    metrics = ["ndcg@10", "hr@5", "mrr", "auc"]
    reports = compare_metrics(tmp_path, "d", PROTO, metrics, reference="ref", n_boot=100)
    assert list(reports) == metrics and reports["auc"].metric == "gauc"
    per_user = {m: load_per_user(tmp_path, "d", PROTO, m) for m in metrics}
    for m in metrics:
        one = compare(tmp_path, "d", PROTO, m, reference="ref", n_boot=100)
        assert reports[m].to_csv() == one.to_csv() and reports[m].to_markdown() == one.to_markdown()
        frames = {lab: pd.concat([pd.Series(v, index=u) for u, v in seeds.values()], axis=1).dropna().mean(axis=1)
                  for lab, seeds in per_user[m].items()}
        joined = pd.concat(frames, axis=1, join="inner").sort_index()
        row = reports[m].rows.iloc[0]
        assert row["n_users"] == len(joined) == 110
        expect = paired_test(joined["ref"].to_numpy(), joined["ours"].to_numpy(), n_boot=100)
        for k in ("mean", "reference_mean", "diff", "ci_low", "ci_high", "wilcoxon_p"):
            got = {"mean": "mean_b", "reference_mean": "mean_a"}.get(k, k)
            assert row[k] == pytest.approx(expect[got], rel=1e-12, abs=1e-15), (m, k)
