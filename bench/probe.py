"""History-swap probe: does a fitted method's ranking come from the user's history?

Each probed user keeps their own candidates, but the method reads another probed user's history: a seeded
derangement, so nobody keeps their own. A method that ranks through the history (textsim, SASRec) falls toward chance;
one that ranks candidates by what they are (Pop, a prior over titles) keeps its score. The gap between these two passes
is how much of a method's score the history carries. Only the history a method reads through its data view
(`data_.history`) is swapped: user-id features (CoLLM's user token, MF's user embedding) stay the user's own.
A third pass scores each user's candidates as the donor, user id and history both (the whole-user swap): what is left
above chance comes from the candidates alone (a prior over items). So the score above chance splits into the
candidates' prior (whole-user swap - chance), user-id features (history swap - whole-user swap) and the history
(own - history swap).
A method that declares input ablations (Method.input_ablations: CoLLM's collaborative slots) is also scored with each
part off, as itself and as the donor: what the part carries, and how much of the candidates' prior reaches the scores
through it (whole-user swap - the same with the part off) and how much without it (that - chance).

The own-history pass scores the very model a cell measured (its saved fit, loaded as the runner loads it) and is
checked user by user against the cell's committed per-user file, so the probe speaks about the published numbers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import stats

from bench.errors import BenchError, MethodError
from bench.evaluate import chance_metrics, evaluate_sampled
from bench.io import write_json, write_text
from bench.protocol import Protocol
from bench.results import (COMPACT_FILE, cell_dir, check_publishable, config_label, environment, git_state,
                           params_hash, per_user_table)

METRICS = ("gauc", "ndcg@10")
REPRODUCE_TOL = 1e-6  # per-user GAUC: the saved fit on another machine may round a margin differently
ROUNDING = 1e-4  # scores of the same inputs in another batch order (LM packing) differ by float rounding only


class SwappedHistories:
    """A method's data view, except that user u reads donor[u]'s history (both splits); everything else passes
    through."""

    def __init__(self, data, donor: dict[int, int]):
        self._data, self._donor = data, donor

    def history(self, user: int, split: str) -> np.ndarray:
        return self._data.history(self._donor.get(int(user), int(user)), split)

    def __getattr__(self, name):
        return getattr(self._data, name)


def derangement(n: int, seed: int) -> np.ndarray:
    """donor[i] != i for every i: the users in a seeded random cycle, each reading the next one's history."""
    if n < 2:
        raise BenchError(f"history probe: needs at least 2 users, got {n}")
    order = np.random.default_rng([seed, 4243]).permutation(n)
    donor = np.empty(n, dtype=np.int64)
    donor[order] = np.roll(order, -1)
    return donor


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of a with the same row of b (NaN where a row is constant)."""
    ra, rb = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / den, np.nan)


@dataclass
class HistoryProbe:
    record: dict
    markdown: str
    written: list[Path] = field(default_factory=list)


def _committed(folder: Path, tokens: np.ndarray, gauc: np.ndarray) -> dict:
    """The own-history pass against the committed cell, user by user."""
    path = folder / COMPACT_FILE
    if not path.is_file():
        return {"file": None, "note": f"no committed cell at {folder}: the own-history pass is not checked"}
    users, table = per_user_table(folder, ["gauc"])
    where = {str(u): i for i, u in enumerate(users)}
    missing = [t for t in tokens if str(t) not in where]
    if missing:
        raise BenchError(f"{path}: probed user {missing[0]!r} is not in the committed cell")
    diff = np.abs(table["gauc"][[where[str(t)] for t in tokens]] - gauc)
    return {"file": str(path), "users": int(len(tokens)), "max_abs_gauc_diff": float(diff.max()),
            "reproduces": bool(diff.max() <= REPRODUCE_TOL)}


def run(root: Path, dataset: str, method: str, seed: int = 0, protocol: str = "sampled-uniform-n99-u300",
        users: int = 100, profile: str = "quick", overrides: dict | None = None, swap_seed: int = 0,
        data_root=None, log: Callable[[str], None] = print) -> HistoryProbe:
    from bench.data.candidates import get_candidates
    from bench.report.significance import paired_test
    from bench.runner import Cell, fit_cell, load_dataset, provenance_git, score_sampled
    t_start = time.perf_counter()
    git = git_state()  # provenance of the code that runs, taken before any work
    proto = Protocol.from_tag(protocol)
    if proto.mode != "sampled":
        raise BenchError(f"--protocol {protocol}: the history probe scores saved candidates (a sampled protocol)")
    if users < 2:
        raise BenchError(f"--users {users}: the history probe needs at least 2 users")
    root = Path(root)
    check_publishable(git, root)
    ds = load_dataset(dataset, data_root=data_root)
    cell = Cell(ds.name, method, seed, (proto,), profile, dict(overrides or {}))
    m = cell.build_method()
    params = m.get_params()
    folder = cell_dir(root, ds.name, proto, method, params, seed)
    test_c, _ = get_candidates(root, ds, "test", proto.n_negatives, proto.sampler, seed)
    test_c = test_c.subset(proto.user_rows(ds.n_users))
    if users < len(test_c.users):
        pick = np.random.default_rng([swap_seed, 7]).choice(len(test_c.users), size=users, replace=False)
        test_c = test_c.subset(np.sort(pick))
    fitted = fit_cell(cell, root, ds, m, provenance={"taken": "probe start", **git}, log=log)
    m = fitted.method
    if not hasattr(m, "data_"):
        raise MethodError(f"method {method}: keeps no data view (data_), so the history it reads cannot be swapped")
    labels = test_c.labels
    tokens = np.asarray(ds.user_tokens)[test_c.users]

    def timed_pass(users):  # every pass scores the same candidates; only whose user (and view) changes
        t0 = time.perf_counter()
        return score_sampled(m, users, test_c.items, "test"), time.perf_counter() - t0

    own, own_s = timed_pass(test_c.users)
    donor = derangement(len(test_c.users), swap_seed)
    real = m.data_
    m.data_ = SwappedHistories(real, {int(u): int(test_c.users[d]) for u, d in zip(test_c.users, donor)})
    try:
        swapped, swap_s = timed_pass(test_c.users)
    finally:
        m.data_ = real
    whole, whole_s = timed_pass(test_c.users[donor])
    ev_own, ev_swap, ev_whole = (evaluate_sampled(scores, labels) for scores in (own, swapped, whole))
    chance = chance_metrics(test_c.items.shape[1])
    ablations, ablation_s = [], {}
    for a in (m.input_ablations() if m.implements("input_ablations") else []):
        with a.off():
            (off, off_s), (whole_off, whole_off_s) = timed_pass(test_c.users), timed_pass(test_c.users[donor])
        ablation_s[a.name] = off_s + whole_off_s
        ablations.append(_ablation(a, evaluate_sampled(off, labels), evaluate_sampled(whole_off, labels), ev_own,
                                   ev_whole, chance))
    rho = rank_correlation(own, swapped)
    tests = {k: paired_test(ev_own.per_user[k], ev_swap.per_user[k]) for k in METRICS}
    id_tests = {k: paired_test(ev_swap.per_user[k], ev_whole.per_user[k]) for k in METRICS}
    split = {k: {"candidates": ev_whole.metrics[k] - chance[k],
                 "user_features": ev_swap.metrics[k] - ev_whole.metrics[k],
                 "history": ev_own.metrics[k] - ev_swap.metrics[k]} for k in METRICS}
    record = {
        "probe": "history-swap", "dataset": ds.name, "fingerprint": ds.fingerprint, "protocol": proto.tag,
        "method": method, "params_hash": params_hash(params), "params": params, "profile": profile,
        "overrides": cell.overrides, "seed": seed, "swap_seed": swap_seed, "users": int(len(test_c.users)),
        "user_tokens": tokens.tolist(), "donor_tokens": tokens[donor].tolist(),
        "own": {k: ev_own.metrics[k] for k in METRICS}, "swapped": {k: ev_swap.metrics[k] for k in METRICS},
        "whole_user": {k: ev_whole.metrics[k] for k in METRICS},
        "chance": {k: chance[k] for k in METRICS}, "tests_swapped_minus_own": tests,
        "tests_whole_user_minus_swapped": id_tests, "above_chance_from": split,
        "whole_user_vs_swapped_max_abs": float(np.abs(whole - swapped).max()),
        "input_ablations": ablations,
        "rank_correlation": {"mean": float(np.nanmean(rho)) if np.isfinite(rho).any() else None,
                             "constant_rows": int(np.isnan(rho).sum())},
        "identical_scores": bool(np.array_equal(own, swapped)),
        "committed_cell": _committed(folder, tokens, ev_own.per_user["gauc"]),
        "fit_reused_from": str(fitted.fit["reused_from"]) if fitted.fit["reused_from"] else None,
        "provenance": {"taken": "probe start", **git},
        "environment": environment(getattr(m, "device_", "cpu"), git=provenance_git(git)),
        "timings": {"fit_s": fitted.fit["fit_s"], "load_s": fitted.fit["load_s"], "own_score_s": own_s,
                    "swapped_score_s": swap_s, "whole_user_score_s": whole_s, "input_ablations_score_s": ablation_s,
                    "total_s": time.perf_counter() - t_start},
    }
    return HistoryProbe(record, markdown(record))


def _ablation(a, ev_off, ev_whole_off, ev_own, ev_whole, chance) -> dict:
    """What one input part carries: own pass with it off, and how the candidates' prior (the whole-user pass above
    chance) splits into what reaches the scores through that part and what does without it."""
    from bench.report.significance import paired_test
    return {"name": a.name, "description": a.description,
            "own": {k: ev_off.metrics[k] for k in METRICS},
            "whole_user": {k: ev_whole_off.metrics[k] for k in METRICS},
            "tests_off_minus_own": {k: paired_test(ev_own.per_user[k], ev_off.per_user[k]) for k in METRICS},
            "tests_whole_user_off_minus_whole_user": {k: paired_test(ev_whole.per_user[k], ev_whole_off.per_user[k])
                                                      for k in METRICS},
            "candidates_from": {k: {"through_it": ev_whole.metrics[k] - ev_whole_off.metrics[k],
                                    "without_it": ev_whole_off.metrics[k] - chance[k]} for k in METRICS}}


def _table_head() -> list[str]:
    return ["| pass | " + " | ".join(k.upper() for k in METRICS) + " |", "|---|" + "---|" * len(METRICS)]


def _means_row(label: str, means: dict) -> str:
    return f"| {label} |" + "".join(f" {means[k]:.4f} |" for k in METRICS)


def _tests_row(label: str, tests: dict) -> str:
    return f"| {label} |" + "".join(f" {t['diff']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}], Wilcoxon p "
                                    f"{t['wilcoxon_p']:.2g} |" for t in (tests[k] for k in METRICS))


def markdown(r: dict) -> str:
    label = config_label(r["method"], r["params_hash"])
    lines = [f"# History-swap probe: {label} seed {r['seed']} on {r['dataset']} ({r['protocol']}, "
             f"{r['users']} users)", "",
             "Each user keeps their candidates but the method reads another probed user's history (a seeded "
             "derangement). A ranking that comes from the history falls toward chance; one from the candidates alone "
             "does not move. The whole-user pass scores the candidates as the donor, user id and history both: what "
             "it keeps above chance is a prior over the candidates themselves.", "", *_table_head()]
    for key, name in (("own", "own history"), ("swapped", "swapped history"),
                      ("whole_user", "whole user swapped (id and history)"), ("chance", "chance")):
        lines.append(_means_row(name, r[key]))
    lines.append(_tests_row("swapped - own", r["tests_swapped_minus_own"]))
    lines.append(_tests_row("whole user - swapped", r["tests_whole_user_minus_swapped"]))
    rc, gap = r["rank_correlation"], r["whole_user_vs_swapped_max_abs"]
    lines += ["", f"- Per-user Spearman between own- and swapped-history scores: mean "
                  f"{rc['mean']:.3f}" if rc["mean"] is not None else "- Every user's scores are constant.",
              f"- Scores identical under the swap: {'yes' if r['identical_scores'] else 'no'}.",
              f"- Whole-user against swapped-history scores: max |difference| {gap:.2g}: " +
              ("the method reads nothing of a user but the history." if gap <= ROUNDING else
               "it reads more of a user than the history (user-id features).")]
    cc = r["committed_cell"]
    if cc.get("file"):
        lines.append(f"- Own-history pass against the committed cell ({cc['users']} users): max per-user GAUC "
                     f"difference {cc['max_abs_gauc_diff']:.2g}: " + ("reproduces it." if cc["reproduces"] else
                                                                      "**does NOT reproduce it**."))
    else:
        lines.append(f"- {cc['note']}")
    g = r["tests_swapped_minus_own"]["gauc"]
    used = g["wilcoxon_p"] < 0.05 and g["diff"] < 0
    a = r["above_chance_from"]["gauc"]
    lines += [f"- Reading: " + (f"the history carries {-g['diff']:.4f} GAUC of the "
                                f"{r['own']['gauc'] - r['chance']['gauc']:+.4f} above chance." if used else
                                "no measurable use of the history (GAUC does not drop significantly)."),
              f"- GAUC above chance, {r['own']['gauc'] - r['chance']['gauc']:+.4f} = candidates alone "
              f"{a['candidates']:+.4f} + user-id features {a['user_features']:+.4f} + history {a['history']:+.4f} "
              "(differences of the pass means; the tests above say which parts are more than noise).",
              f"- Fit: {'loaded from ' + r['fit_reused_from'] if r['fit_reused_from'] else 'fitted by the probe'}; "
              f"commit {r['provenance'].get('commit')} (dirty {r['provenance'].get('dirty')})."]
    for a in r.get("input_ablations", []):
        lines += _ablation_lines(a, r["above_chance_from"]["gauc"]["candidates"])
    return "\n".join(lines) + "\n"


def _ablation_lines(a: dict, candidates_gauc: float) -> list[str]:
    g, c = a["tests_off_minus_own"]["gauc"], a["candidates_from"]["gauc"]
    lines = ["", f"## Input ablation `{a['name']}`", "", f"{a['description']}.", "", *_table_head(),
             _means_row(f"own history, {a['name']} off", a["own"]),
             _means_row(f"whole user swapped, {a['name']} off", a["whole_user"]),
             _tests_row("own: off - on", a["tests_off_minus_own"]),
             _tests_row("whole user: off - on", a["tests_whole_user_off_minus_whole_user"]),
             "",
             f"- Reading: switching {a['name']} off moves own GAUC by {g['diff']:+.4f} (Wilcoxon p "
             f"{g['wilcoxon_p']:.2g}).",
             f"- The candidates' GAUC prior, {candidates_gauc:+.4f} = through {a['name']} {c['through_it']:+.4f} + "
             f"without it {c['without_it']:+.4f}."]
    return lines


def write(probe: HistoryProbe, root: Path) -> list[Path]:
    r = probe.record
    stem = (Path(root) / r["dataset"] / "probes" /
            f"history-swap-{r['protocol']}-{r['method']}-{r['params_hash']}-seed{r['seed']}-u{r['users']}"
            f"-swap{r['swap_seed']}")
    write_json(stem.with_suffix(".json"), r)
    write_text(stem.with_suffix(".md"), probe.markdown)
    probe.written = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    return probe.written
