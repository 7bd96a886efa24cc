"""The harness as a library: each command of bench.py is a function here, taking the command's options as keyword
arguments and returning a result object instead of printing. bench/cli.py is argument parsing and printing over it.

    from bench import api
    res = api.run(dataset="ml-100k", methods=["random", "pop"], out="runs-nb")
    res.table                                        # one row per (cell, protocol): status, metrics, folder
    lb = api.leaderboard("ml-100k", out="runs-nb")   # lb.table: mean metrics per method; lb.written: the files
    sig = api.significance("ml-100k", metric="ndcg@10", out="runs-nb")   # sig.rows: one row per comparison

Lists may be given as Python lists or as the CLI's comma-separated strings. `overrides` is {method: {param: value}}
or the CLI's ["METHOD.PARAM=VALUE", ...]. Bad names and values raise BenchError (one line) before any work."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from bench.errors import BenchError
from bench.protocol import Protocol, parse_protocols

RESULTS_ENV = "LLMREC_RESULTS"


def default_out() -> str:
    """Where runs and reports go unless told otherwise: a git-ignored run folder. The published reference results
    (`results/`) are written only when asked for explicitly (out="results")."""
    return os.environ.get(RESULTS_ENV) or "runs"


def _names(value, what: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out = [str(v).strip() for v in items if str(v).strip()]
    if not out:
        raise BenchError(f"{what}: nothing given")
    return out


def _seeds(value) -> list[int]:
    if isinstance(value, int):
        return [value]
    try:
        return [int(s) for s in _names(value, "--seeds")]
    except ValueError:
        raise BenchError(f"--seeds {value!r}: expected comma-separated integers, e.g. 0,1,2") from None


def _check_data_root(data_root) -> None:
    if data_root is not None and not Path(data_root).is_dir():
        raise BenchError(f"--data-root {data_root}: no such folder")


def parse_overrides(overrides, methods: list[str]) -> dict[str, dict[str, Any]]:
    """{method: {param: value}} for every method of the run, from a dict or the CLI's METHOD.PARAM=VALUE strings
    (typed by the Params field: no eval). A method that is not in the run is an error."""
    from bench.method import coerce_param, get_method
    out: dict[str, dict] = {m: {} for m in methods}
    if isinstance(overrides, dict):
        for method, params in overrides.items():
            if method not in out:
                raise BenchError(f"overrides for method {method!r}, which is not in methods ({', '.join(methods)})")
            out[method].update(params)
        return out
    for item in overrides or []:
        key, sep, value = item.partition("=")
        method, dot, param = key.partition(".")
        if not sep or not dot:
            raise BenchError(f"--set {item!r}: expected METHOD.PARAM=VALUE, e.g. sasrec.epochs=5")
        if method not in out:
            raise BenchError(f"--set {item!r}: method {method!r} is not in --methods ({', '.join(methods)})")
        out[method][param] = coerce_param(get_method(method), param, value)
    return out


# ---------------------------------------------------------------------------------------------------------- run
@dataclass
class RunPlan:
    """A validated grid: every name, value and protocol was checked, nothing has run yet."""
    datasets: list[str]
    methods: list[str]
    seeds: list[int]
    protocols: tuple[Protocol, ...]
    cells: list                  # bench.runner.Cell, one per (dataset, seed, method)
    out: Path
    data_root: Any = None
    force: bool = False
    executor: str = "local"
    ray_address: str | None = None


@dataclass
class RunResult:
    plan: RunPlan
    outcomes: list               # bench.executors.Outcome, one per cell

    @property
    def failed(self) -> list:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def finished(self) -> int:
        """Protocol results that exist now (done in this run or finished earlier)."""
        return sum(len(o.results) for o in self.outcomes)

    @property
    def table(self) -> pd.DataFrame:
        """One row per (cell, protocol): dataset, method, seed, protocol, status (done | skipped | failed), the
        metrics (read back for skipped cells) and the folder."""
        from bench.evaluate import METRIC_KEYS
        from bench.io import read_json
        rows = []
        for o in self.outcomes:
            head = {"dataset": o.cell.dataset, "method": o.cell.method, "seed": o.cell.seed}
            if o.status == "failed":
                rows += [{**head, "protocol": p.tag, "status": "failed", "error": o.error} for p in o.cell.protocols]
                continue
            for p, (status, result, folder) in zip(o.cell.protocols, o.results):
                if result is None and (Path(folder) / "result.json").is_file():
                    result = read_json(Path(folder) / "result.json")
                metrics = (result or {}).get("metrics", {})
                rows.append({**head, "protocol": p.tag, "status": status,
                             **{k: metrics.get(k) for k in METRIC_KEYS}, "folder": str(folder)})
        return pd.DataFrame(rows)


def plan_run(dataset="ml-100k", methods="random,pop,sasrec", seeds=0, protocol="sampled", sampler="uniform",
             negatives: int = 99, users: int | None = None, profile: str = "quick", overrides=None, out=None,
             data_root=None, force: bool = False, executor: str = "local", ray_address: str | None = None,
             variants=None, check_git: bool = True) -> RunPlan:
    """Check every name, value, protocol and dataset of a run before any work; the cells to run. `check_git=False`
    skips the clean-tree check of a published `out` (a dry run writes nothing)."""
    from bench.data.candidates import check_negatives
    from bench.data.prepare import load_dataset
    from bench.data.recipe import load_recipe
    from bench.executors import EXECUTORS
    from bench.method import PROFILES, get_method
    from bench.results import check_publishable, git_state
    from bench.plugins import included
    from bench.runner import Cell
    _check_data_root(data_root)
    datasets, methods, seeds = _names(dataset, "--dataset"), _names(methods, "--methods"), _seeds(seeds)
    for d in datasets:
        load_recipe(d)  # unknown names fail here, before any work
    for m in methods:
        get_method(m)
    if profile not in PROFILES:
        raise BenchError(f"--profile {profile!r}: valid: {', '.join(PROFILES)}")
    if negatives < 1:
        raise BenchError(f"--negatives {negatives}: must be >= 1")
    if users is not None and users < 1:
        raise BenchError(f"--users {users}: must be >= 1")
    protocols = parse_protocols(",".join(_names(protocol, "--protocol")), ",".join(_names(sampler, "--sampler")),
                                negatives, users)
    params = parse_overrides(overrides, methods)
    for m in methods:  # bad parameter values and impossible protocols fail before any work
        get_method(m).from_profile(profile, **params[m])
        if any(p.mode == "full" for p in protocols) and not get_method(m).supports_full:
            raise BenchError(f"method {m} does not support full ranking; drop it or use --protocol sampled")
        if variants is not None and not get_method(m).implements("set_prompt"):
            raise BenchError(f"method {m} does not read prompts; the robustness suite applies to prompt-based "
                             "methods")
    if executor not in EXECUTORS:
        raise BenchError(f"--executor {executor!r}: valid: {', '.join(EXECUTORS)}")
    out = Path(out if out is not None else default_out())
    if check_git:
        check_publishable(git_state(), out)  # before any work; each cell checks again when it starts
    for d in datasets:  # bad data and impossible protocols: one line for the run, not one per cell
        ds = load_dataset(d, data_root=data_root)
        for p in protocols:
            if p.mode == "sampled":
                check_negatives(ds, p.n_negatives)
    cells = [Cell(d, m, s, protocols, profile, params[m], variants=variants, include=included())
             for d in datasets for s in seeds for m in methods]
    return RunPlan(datasets, methods, seeds, protocols, cells, out, data_root, force, executor, ray_address)


def execute(plan: RunPlan, on_start: Callable | None = None, on_outcome: Callable | None = None,
            log: Callable[[str], None] | None = None, on_progress: Callable | None = None) -> RunResult:
    """Run a plan's cells (finished ones are skipped unless plan.force). Callbacks: on_start(cell) before a cell
    (local executor), on_outcome(Outcome) after each, log(message), on_progress(stage, n, total) while scoring."""
    from bench.executors import run_local, run_ray
    log = log or (lambda message: None)
    if plan.executor == "ray":
        outcomes = run_ray(plan.cells, plan.out, data_root=plan.data_root, force=plan.force,
                           address=plan.ray_address, on_outcome=on_outcome)
        return RunResult(plan, outcomes)
    outcomes = []
    for cell in plan.cells:
        if on_start:
            on_start(cell)
        outcomes += run_local([cell], plan.out, data_root=plan.data_root, force=plan.force, on_outcome=on_outcome,
                              log=log, on_progress=on_progress)
    return RunResult(plan, outcomes)


def run(dataset="ml-100k", methods="random,pop,sasrec", seeds=0, protocol="sampled", sampler="uniform",
        negatives: int = 99, users: int | None = None, profile: str = "quick", overrides=None, out=None,
        data_root=None, force: bool = False, executor: str = "local", ray_address: str | None = None,
        on_plan: Callable[[RunPlan], None] | None = None, **callbacks) -> RunResult:
    """`bench.py run`: train each (dataset, method, seed) cell once and score it under every protocol. A failed cell
    does not stop the others: see `result.failed`. on_plan(plan) is called after validation, before any work."""
    plan = plan_run(dataset, methods, seeds, protocol, sampler, negatives, users, profile, overrides, out, data_root,
                    force, executor, ray_address)
    if on_plan:
        on_plan(plan)
    return execute(plan, **callbacks)


def _grid_cells(out, dataset: str | None = None) -> Iterable[tuple[tuple[str, ...], dict]]:
    """(path parts, result) of the finished cells in the grid layout <dataset>/<protocol>/<method>/<hash>/seed<N>
    under `out` (not robustness or legacy cells)."""
    from bench.results import iter_results
    for folder, r in iter_results(Path(out), dataset):
        parts = folder.relative_to(Path(out)).parts
        try:
            if len(parts) == 5 and parts[0] == r["dataset"]["name"]:
                yield parts, r
        except (KeyError, TypeError, AttributeError):
            continue


def _grid_results(out) -> list[tuple[dict, str]]:
    """The grid's finished cells (`_grid_cells`), each with the device kind it ran on: what the fit and scoring
    estimates read, once per plan."""
    return [(r, str((r.get("environment") or {}).get("device") or "cpu").split(":")[0]) for _, r in _grid_cells(out)]


def _fit_records(results: list[tuple[dict, str]]
                 ) -> dict[tuple[str, str, str, str], tuple[float, int | None, str, bool]]:
    """(dataset, method, work hash, device kind) -> (median wall-clock minutes of the fits its finished cells
    (`_grid_results`) recorded, the dataset's interaction count, the method's kind, whether a seed was ended by the
    safety stop, so that its time is a lower bound), one fit per seed however many protocols scored it (a fit reused
    from disk does not count, nor one resumed and timed over its last run only). The work hash leaves out the safety
    stops (`bench.results.work_hash`): a plan that raises max_minutes still finds the records of the same work. Wall
    clock: it carries the load of the machine at the time."""
    import statistics
    from bench.results import fit_time_is_partial, work_hash
    seconds: dict[tuple[str, str, str, str], dict[int, float]] = {}
    size: dict[str, int | None] = {}
    kinds: dict[str, str] = {}
    stopped: set[tuple[str, str, str, str]] = set()
    for r, device in results:
        try:
            if (r["training"].get("fit_reused_from") is None and r["timings"]["fit_s"] > 0
                    and not fit_time_is_partial(r)):
                dataset = r["dataset"]["name"]
                key = (dataset, r["method"]["name"], work_hash(r["method"].get("params"), r["method"]["params_hash"]),
                       device)
                seconds.setdefault(key, {}).setdefault(r["seed"], r["timings"]["fit_s"])
                size.setdefault(dataset, (r["dataset"].get("stats") or {}).get("interactions"))
                kinds[key[1]] = r["method"].get("kind", "baseline")
                if r["training"].get("budget_stopped"):
                    stopped.add(key)
        except (KeyError, TypeError, AttributeError):
            continue
    return {key: (statistics.median(by_seed.values()) / 60, size[key[0]], kinds[key[1]], key in stopped)
            for key, by_seed in seconds.items()}


def fit_minutes_estimates(out, dataset: str, interactions: int, device: str = "cpu", records: dict | None = None
                          ) -> dict[tuple[str, str], tuple[float, str]]:
    """(method, work hash) -> (estimated fit minutes, where it comes from) for a fit on `dataset` on `device` (cpu
    or cuda: only records made on that kind of device count): the median its finished seeds on this dataset
    recorded, else a record of the same configuration on the dataset nearest in size,
    scaled by the ratio of interactions. Rough: from the beauty subsample to beauty-5core (9.6x the interactions)
    bpr / caser / sasrec took 9.4x / 7.7x / 12.2x the time, but bert4rec about 38x (its softmax over all items grows
    with the item count too, 7.6x there). Only methods that train in epochs over the data (baselines, the text
    floor) are scaled: LM methods train on a fixed number of samples, so their time does not follow the data size."""
    import math
    records = _fit_records(_grid_results(out)) if records is None else records  # read once per plan
    estimates: dict[tuple[str, str], tuple[float, str]] = {}
    elsewhere: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
    for (d, m, h, dev), (minutes, n, kind, stopped) in records.items():
        if dev != device.split(":")[0]:
            continue
        lower = ", budget-stopped: at least" if stopped else ""
        if d == dataset:
            estimates[m, h] = (minutes, "recorded" + lower)
        elif n and interactions and kind in ("baseline", "text"):
            ratio = interactions / n
            elsewhere.setdefault((m, h), []).append((abs(math.log(ratio)), minutes * ratio,
                                                     f"{d} x{ratio:.2g}{lower}"))
    for key, options in elsewhere.items():
        if key not in estimates:
            _, minutes, source = min(options)
            estimates[key] = (minutes, f"scaled from {source}")
    return estimates


def _pairs(mode: str, users: int, items: int, n_negatives: int | None) -> int:
    """(user, item) pairs a protocol scores: every item under full ranking, 1 + N candidates when sampled."""
    return users * (items if mode == "full" else (n_negatives or 0) + 1)


def _score_records(results: list[tuple[dict, str]]
                   ) -> dict[tuple[str, str, str, str], list[tuple[float, int, str]]]:
    """(method, work hash, device kind, protocol mode) -> [(test-scoring seconds per scored (user, item) pair, pairs
    scored, dataset)], one entry per finished cell (`_grid_results`). Scoring is what a cell costs after its fit:
    under full ranking a pointwise model (DIN, the LM methods) scores every item for every user, which can dwarf the
    fit."""
    from bench.results import work_hash
    records: dict[tuple[str, str, str, str], list[tuple[float, int, str]]] = {}
    for r, device in results:
        try:
            proto = r["protocol"]
            pairs = _pairs(proto["mode"], int(r["n_users"]), int(r["dataset"]["stats"]["items"]),
                           proto.get("n_negatives"))
            seconds = float(r["timings"]["score_s"])
            key = (r["method"]["name"], work_hash(r["method"].get("params"), r["method"]["params_hash"]), device,
                   proto["mode"])
        except (KeyError, TypeError, AttributeError, ValueError):
            continue
        if pairs > 0 and seconds > 0:
            records.setdefault(key, []).append((seconds / pairs, pairs, r["dataset"]["name"]))
    return records


def score_minutes_estimate(records, method: str, work_hash_: str, device: str, mode: str, pairs: int,
                           dataset: str) -> tuple[float, str] | None:
    """Estimated minutes to score `pairs` (user, item) pairs under `mode`, from the record of the same method, work
    hash (params without the safety stops) and device kind nearest in pairs scored (the same dataset first), scaled
    linearly by the pair count; None without a record. Rough: a model that scores all items at once (RecBole's full
    sort) gains little from fewer candidates."""
    import math
    options = records.get((method, work_hash_, device.split(":")[0], mode))
    if not options or pairs <= 0:
        return None
    per_pair, n, source = min(options, key=lambda o: (o[2] != dataset, abs(math.log(pairs / o[1]))))
    return per_pair * pairs / 60, ("recorded" if source == dataset and n == pairs
                                   else f"scaled from {source} x{pairs / n:.2g} pairs")


def plan_state(plan: RunPlan) -> pd.DataFrame:
    """`bench.py run --dry-run`: what a plan would do, without doing it. One row per (cell, protocol): dataset,
    method, seed, protocol, state (finished | to run), the fit's state (saved: reused without training;
    resumable: an interrupted fit continues after its saved epochs; none: trained from scratch) and, for a fit still
    to train, `fit_min_est`: the median fit time its method's finished seeds recorded under the same params (the
    safety stops aside: bench.results.work_hash), else such a record on another dataset scaled by the ratio of
    interactions (`est_from` says which, and "budget-stopped: at least" where the stop ended a recorded seed; at most
    the method's max_minutes safety stop, which `est_from` then names; NaN where there is neither; a resumable fit
    needs less), and `score_min_est`: the test scoring of that protocol alone, from the records' seconds per scored
    (user, item) pair (`score_est_from`; see score_minutes_estimate)."""
    from bench.data.prepare import load_dataset
    from bench.fits import fit_dir, resume_dir
    from bench.method import resolve_device
    from bench.resume import progress_note
    from bench.results import cell_dir, is_finished, work_hash
    results = _grid_results(plan.out)
    rows, loaded, minutes, records, scoring = [], {}, {}, _fit_records(results), _score_records(results)
    for cell in plan.cells:
        if cell.dataset not in loaded:
            loaded[cell.dataset] = load_dataset(cell.dataset, plan.data_root)
        ds = loaded[cell.dataset]
        stats = ds.stats()
        params = cell.build_method().get_params()
        fit = fit_dir(plan.out, ds.name, cell.method, params, cell.seed)
        note = None if plan.force else progress_note(resume_dir(fit))
        fit_state = ("saved" if not plan.force and (fit / "fit.json").is_file()
                     else f"resumable ({note[0]})" if note else "none")
        device = resolve_device(str(params.get("device", "auto")))
        if (cell.dataset, device) not in minutes:
            minutes[cell.dataset, device] = fit_minutes_estimates(plan.out, ds.name, stats["interactions"], device,
                                                                  records)
        h = work_hash(params)   # records of the same work, whatever its safety stop
        estimate = None if fit_state == "saved" else minutes[cell.dataset, device].get((cell.method, h))
        cap = params.get("max_minutes")
        if estimate and cap and estimate[0] > cap:  # the wall-clock safety stop would end this fit early
            estimate = (float(cap), f"{estimate[1]}: {estimate[0]:.0f}, stopped by max_minutes")
        for p in cell.protocols:
            done = not plan.force and is_finished(cell_dir(plan.out, ds.name, p, cell.method, params, cell.seed),
                                                  ds.fingerprint)
            n_users = stats["users"] if p.max_users is None else min(p.max_users, stats["users"])
            scored = None if done else score_minutes_estimate(
                scoring, cell.method, h, device, p.mode,
                _pairs(p.mode, n_users, stats["items"], p.n_negatives), ds.name)
            rows.append({"dataset": ds.name, "method": cell.method, "seed": cell.seed, "protocol": p.tag,
                         "state": "finished" if done else "to run", "fit": "-" if done else fit_state,
                         "fit_min_est": float("nan") if done or estimate is None else round(estimate[0], 1),
                         "est_from": "-" if done or estimate is None else estimate[1],
                         "score_min_est": float("nan") if scored is None else round(scored[0], 1),
                         "score_est_from": "-" if scored is None else scored[1]})
    return pd.DataFrame(rows, columns=["dataset", "method", "seed", "protocol", "state", "fit", "fit_min_est",
                                       "est_from", "score_min_est", "score_est_from"])


_run_grid = run  # for the functions below, whose `run` flag (as on the command line) hides this one


# ------------------------------------------------------------------------------------------------------ reports
def _dataset_name(dataset: str) -> str:
    from bench.data.recipe import load_recipe
    return load_recipe(dataset).name


def leaderboard(dataset: str, protocol: str = "sampled-uniform-n99", target: str | None = None, out=None,
                write: bool = True):
    """`bench.py leaderboard`: the paper-style table from stored results (bench.report.leaderboard.Leaderboard;
    `.table` is a DataFrame, `.written` the Markdown / CSV / LaTeX files)."""
    from bench.report import leaderboard as lb_mod
    root = Path(out if out is not None else default_out())
    lb = lb_mod.build(root, _dataset_name(dataset), Protocol.from_tag(protocol).tag, target)
    if write:
        lb.written = lb_mod.write(lb, root)
    return lb


def curves(dataset: str, protocol: str = "sampled-uniform-n99", out=None, write: bool = True):
    """`bench.py curves`: every validation curve the cells' fits recorded, per method and stage
    (bench.report.curves.CurvesReport; `.table()` is a DataFrame, `.written` the Markdown / CSV / PNG files)."""
    from bench.report.curves import build
    root = Path(out if out is not None else default_out())
    report = build(root, _dataset_name(dataset), Protocol.from_tag(protocol).tag)
    if write:
        report.written = report.write(root)
    return report


def significance(dataset: str, protocol: str = "sampled-uniform-n99", metric: str = "ndcg@10",
                 reference: str | None = None, all_pairs: bool = False, test: str = "wilcoxon", alpha: float = 0.05,
                 out=None, write: bool = True, methods=None):
    """`bench.py significance` for one metric: paired tests on the stored per-user values
    (bench.report.significance.SignificanceReport; `.rows` is a DataFrame, `.written` the files)."""
    from bench.report.significance import compare
    root = Path(out if out is not None else default_out())
    report = compare(root, _dataset_name(dataset), Protocol.from_tag(protocol).tag, metric, reference=reference,
                     all_pairs=all_pairs, alpha=alpha, test=test,
                     methods=_names(methods, "--methods") if methods else None)
    if write:
        report.written = report.write(root)
    return report


def compare_protocols(dataset: str, methods="random,pop,sasrec", seeds=0, negatives: int = 99,
                      users: int | None = None, profile: str = "quick", overrides=None, metric: str = "ndcg@10",
                      run: bool = True, out=None, data_root=None, force: bool = False, executor: str = "local",
                      ray_address: str | None = None, on_plan=None, **callbacks):
    """`bench.py compare-protocols`: the same trained models under full ranking and uniform / popularity
    candidates (all users), with Kendall tau between the orderings (bench.report.protocols.ProtocolComparison)."""
    from bench.report.protocols import compare, write
    if users is not None:
        raise BenchError("compare-protocols scores every test user under each protocol; drop --users")
    root = Path(out if out is not None else default_out())
    name = _dataset_name(dataset)
    if run:
        _run_grid(dataset, methods, seeds, "full,sampled", "uniform,popularity", negatives, None, profile, overrides,
                  root, data_root, force, executor, ray_address, on_plan=on_plan, **callbacks)
    table = compare(root, name, _names(methods, "--methods") if methods else None, negatives, metric)
    table.written = write(table, root, name)
    return table


def robustness(dataset: str, methods="ganprompt,tallrec,collm", seeds=0, negatives: int = 19, users: int | None = 300,
               sampler: str = "uniform", profile: str = "quick", overrides=None, metric: str = "ndcg@10",
               seen: str = "seen-0", variants: str = "all", seed_perturb: int = 0, pair=None, templates=None,
               run: bool = True, out=None, data_root=None, force: bool = False,
               log: Callable[[str], None] | None = None):
    """`bench.py robustness` (RQ1): each prompt-based method trained once on the `seen` template, scored under the
    held-out templates and perturbations (bench.report.robustness.RobustnessReport). Default scale 300 users x 20
    candidates: at 5 candidates chance NDCG@10 is .59 and HR@10 is 1, so no drop could show. `templates`: template
    files (templates.yaml's format) whose held-out templates join the bank (registered for the process, as
    `include`'s are)."""
    from bench.lm.perturb import add_held_out
    from bench.lm.perturb import variants as make_variants
    from bench.method import get_method
    from bench.report.robustness import build, write
    from bench.runner import run_cell
    log = log or (lambda message: None)
    root = Path(out if out is not None else default_out())
    name = _dataset_name(dataset)
    methods = _names(methods, "--methods")
    protocol = parse_protocols("sampled", sampler, negatives, users)[0]
    params = parse_overrides(overrides, methods)
    for path in [templates] if isinstance(templates, (str, Path)) else templates or ():
        if variants == "perturbations":
            raise BenchError(f"--templates {path}: --variants perturbations scores no held-out template")
        log(f"held-out templates from {path}: {', '.join(add_held_out(path))}")
    # PDR is a drop from the template a model was trained on: train every method on `seen` (CoLLM adds its <user> /
    # <item> slots to it, in training as when scoring any variant: methods/collm.py, with_slots)
    for m in methods:
        if "template" not in {f.name for f in dataclasses.fields(get_method(m).Params)}:
            continue
        if params[m].get("template", seen) != seen:
            raise BenchError(f"--set {m}.template={params[m]['template']} conflicts with --seen {seen}: the "
                             "robustness suite measures drops from the template each method was trained on")
        own = get_method(m).from_profile(profile).params.template
        if own != seen:
            params[m]["template"] = seen
            log(f"{m}: trained on the seen template {seen!r} for the robustness suite (its own default is {own!r})")
    if pair is not None:
        pair = tuple(_names(pair, "--pair"))
        if len(pair) != 2:
            raise BenchError(f"--pair {','.join(pair)!r}: expected two methods, e.g. ganprompt,tallrec")
    if run:
        chosen = tuple(make_variants(seen, seed_perturb, variants))
        plan = plan_run(dataset, methods, seeds, protocol.tag, sampler, negatives, users, profile, params, root,
                        data_root, force, variants=chosen)
        for cell in plan.cells:
            outcomes = run_cell(cell, root, data_root=data_root, force=force, log=log)
            for v, (status, result, _) in zip(chosen, outcomes):
                value = result["metrics"][metric] if result else None
                log(f"{status} {cell.method} seed {cell.seed} {v.id}: "
                    + (f"{metric} {value:.4f}" if value is not None else "finished earlier"))
    report = build(root, name, protocol.tag, metric, pair, seen)
    report.written = write(report, root)
    return report


@dataclass
class Reproduction:
    """A paper table beside ours: `markdown`, `table` (one row per method and metric: ours, paper, diff)."""
    markdown: str
    table: pd.DataFrame
    protocol: str
    written: list[Path] = field(default_factory=list)
    run: RunResult | None = None


def reproduce(table: str, dataset: str | None = None, methods=None, seeds=0, negatives: int | None = None,
              users: int | None = None, profile: str = "quick", overrides=None, run: bool = True, out=None,
              data_root=None, force: bool = False, executor: str = "local", ray_address: str | None = None,
              on_plan=None, **callbacks) -> Reproduction:
    """`bench.py reproduce`: run the grid of a paper table (its methods on its dataset), then render it beside the
    published numbers. The quick profile's default budget scores every method on the same 300 users x 20
    candidates (the LLM protocol of the published beauty table); give `negatives` / `users` to choose otherwise."""
    from bench.report.reproduce import paper_methods, paper_table, save, side_by_side
    paper_table(table)  # unknown tables fail before any work
    if profile == "quick" and users is None and negatives is None:
        users, negatives = 300, 19   # the CPU budget, and the protocol the published LLM cells use
    negatives = 99 if negatives is None else negatives
    dataset = dataset or table
    methods = methods or paper_methods()
    root = Path(out if out is not None else default_out())
    protocol = parse_protocols("sampled", "uniform", negatives, users)[0]
    result = None
    if run:
        result = _run_grid(dataset, methods, seeds, protocol.tag, "uniform", negatives, users, profile, overrides,
                           root, data_root, force, executor, ray_address, on_plan=on_plan, **callbacks)
    name = _dataset_name(dataset)
    parsed = parse_overrides(overrides, methods)
    try:
        md, df = side_by_side(root, name, table, protocol.tag, profile, parsed)
    except BenchError as e:  # nothing stored under this protocol: say which flags would render what is
        raise BenchError(f"{e}{_stored_renders_hint(root, table)}") from None
    return Reproduction(md, df, protocol.tag, save(root, name, table, protocol.tag, md, df), result)


def _stored_renders_hint(root: Path, table: str) -> str:
    """The flags that would render a paper table from what `root` already holds (its sampled-uniform protocols on
    the table's datasets), for the error of a `--no-run` that finds nothing under the defaults."""
    from bench.results import protocol_folders
    flags = []
    for ds in (table, f"{table}-5core"):
        for _, proto in protocol_folders(root, ds):
            if proto.mode == "sampled" and proto.sampler == "uniform":
                flags.append(f"--dataset {ds} --negatives {proto.n_negatives}"
                             + (f" --users {proto.max_users}" if proto.max_users else ""))
    return f"; {root} holds results for: " + " | ".join(flags) if flags else ""


# ------------------------------------------------------------------------------------------ listings and checks
def status(out=None, dataset: str | None = None) -> pd.DataFrame:
    """`bench.py status`: every cell folder under `out`: cell, state (done / running / interrupted / failed),
    seconds, detail."""
    from bench.executors import grid_status
    root = Path(out if out is not None else default_out())
    rows = grid_status(root, dataset)
    if not rows:
        raise BenchError(f"no cells under {root}" + (f"/{dataset}" if dataset else ""))
    return pd.DataFrame(rows, columns=["cell", "state", "seconds", "detail"])


def seed_grid(out=None, dataset: str | None = None) -> pd.DataFrame:
    """`bench.py status --grid`: which seeds are finished for each (dataset, method configuration) under each
    protocol, one row per configuration (labelled as in the leaderboards: name, or name[hash] where a method has
    several on a dataset), one column per protocol tag, "-" where none is; what a grid that grows over several
    sessions still lacks, at a glance."""
    from bench.results import method_labels
    root = Path(out if out is not None else default_out())
    rows = []
    for parts, r in _grid_cells(root, dataset):
        try:
            rows.append((parts[0], parts[1], r["method"]["name"], r["method"]["params_hash"], int(r["seed"])))
        except (KeyError, TypeError, ValueError):
            continue
    if not rows:
        raise BenchError(f"no finished cells under {root}" + (f"/{dataset}" if dataset else ""))
    df = pd.DataFrame(rows, columns=["dataset", "protocol", "method", "params_hash", "seed"])
    df["label"] = ""
    for name, part in df.groupby("dataset"):
        df.loc[part.index, "label"] = method_labels(zip(part["method"], part["params_hash"]))
    seeds = (df.drop_duplicates(["dataset", "label", "protocol", "seed"]).sort_values("seed")
             .groupby(["dataset", "label", "protocol"])["seed"].agg(lambda s: ",".join(map(str, s))))
    return seeds.unstack("protocol").fillna("-").rename_axis(columns=None).reset_index().rename(
        columns={"label": "method"})


def derive(dataset: str, to: str, methods=None, out=None, force: bool = False,
           log: Callable[[str], None] | None = None) -> list[Path]:
    """`bench.py derive`: the cells of the user-subsample protocol `to` from finished all-users cells of `dataset`
    (bench.derive), of every method or of `methods` ("a,b" or a list); returns the folders written."""
    from bench.derive import derive as run_derive
    return run_derive(Path(out if out is not None else default_out()), dataset, to,
                      methods=_names(methods, "--methods") if methods else None, force=force, log=log)


def audit(out="results", reports: bool = True):
    """`bench.py audit`: the checks of the published results (bench.report.audit.AuditReport); `reports=False`
    skips rebuilding every report from its cells."""
    from bench.report.audit import audit as run_audit
    return run_audit(Path(out), reports=reports)


def reports(out=None, dataset: str | None = None) -> list[tuple[str, str]]:
    """`bench.py reports`: every report under `out` (or out/dataset) rebuilt from its cells, the changed ones
    rewritten; (file, "rewritten" | "unchanged" | why it cannot be rebuilt) per report."""
    from bench.report.current import refresh
    return refresh(Path(out if out is not None else default_out()), dataset)


def diversity(dataset: str, method: str = "ganprompt", profile: str = "quick", seed: int = 0, samples: int = 60,
              overrides=None, out=None, data_root=None, log: Callable[[str], None] | None = None) -> dict:
    """`bench.py diversity` (RQ2, GANPrompt): encoder embeddings of the K + 1 attribute variants before and after
    stage 1; {"stats", "markdown", "png", "folder"}."""
    from bench.data.prepare import load_dataset
    from bench.data.view import FitData
    from bench.method import get_method
    from bench.results import check_publishable, git_state, params_hash
    from methods.ganprompt.diversity import check_method, run as run_diversity
    _check_data_root(data_root)
    root = Path(out if out is not None else default_out())
    git = git_state()  # provenance of the code that runs, taken before any work
    check_publishable(git, root)
    changed = parse_overrides(overrides, [method])[method]
    m = get_method(method).from_profile(profile, **changed)
    check_method(m)  # before the data is loaded
    ds = load_dataset(dataset, data_root=data_root)
    data = FitData.from_dataset(ds, seed=seed, log=log)
    config = f"{profile}-{params_hash(m.get_params())}" if changed else profile  # overrides: a report of its own
    folder = root / ds.name / "diversity" / f"{method}-{config}-seed{seed}"
    return {**run_diversity(data, m, folder, n_eval=samples, git=git), "folder": folder}


def history_probe(dataset: str, method: str, seed: int = 0, protocol: str = "sampled-uniform-n99-u300",
                  users: int = 100, profile: str = "quick", overrides=None, swap_seed: int = 0, out=None,
                  data_root=None, log: Callable[[str], None] | None = None):
    """`bench.py history-probe`: the cell's fitted model (its saved fit, else fitted now) scores `users` of the
    protocol's users with their own history, another probed user's, as that user entirely, and with each input
    ablation the method declares switched off (bench.probe); the report is written under out/DATASET/probes.
    Returns a bench.probe.HistoryProbe (record, markdown, written)."""
    from bench.probe import run as run_probe, write
    _check_data_root(data_root)
    root = Path(out if out is not None else default_out())
    changed = parse_overrides(overrides, [method])[method]
    probe = run_probe(root, dataset, method, seed=seed, protocol=protocol, users=users, profile=profile,
                      overrides=changed, swap_seed=swap_seed, data_root=data_root, log=log or (lambda m: None))
    write(probe, root)
    return probe


def check_method(name: str, overrides=None, profile: str | None = "quick",
                 log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """`bench.py check-method`: the conformance checks every built-in method passes (bench/conformance.py), for one
    method, fitted on a tiny MovieLens slice with its `profile` values and `overrides`. One row per check: check,
    ok, detail."""
    from bench.conformance import check_method as run_checks
    from bench.method import get_method
    get_method(name)
    checks = run_checks(name, parse_overrides(overrides, [name])[name], profile, log=log)
    return pd.DataFrame([dataclasses.asdict(c) for c in checks], columns=["name", "ok", "detail"]).rename(
        columns={"name": "check"})


def include(path) -> list[str]:
    """Load a plugin .py file or folder (methods, dataset recipes, prompt templates), as `--include PATH` does;
    returns the names of the methods it registered."""
    from bench.plugins import include as load
    return load(path)


def datasets(names: Iterable[str] | str | None = None, data_root=None, raise_errors: bool = False) -> pd.DataFrame:
    """`bench.py datasets`: the paper's Table 1 columns per recipe and the popularity signal of the leave-one-out split
    (`pop_target` / `pop_all` = `pop_signal`, see bench.data.candidates.popularity_signal); a recipe whose data is
    unavailable gets a row saying why (or raises, with raise_errors)."""
    from bench.data.candidates import popularity_signal
    from bench.data.prepare import load_dataset
    from bench.data.recipe import available_recipes, load_recipe
    _check_data_root(data_root)
    rows = []
    for name in (_names(names, "--dataset") if names else available_recipes()):
        recipe = load_recipe(name)
        paper = recipe.paper_counts or {}
        try:
            ds = load_dataset(recipe, data_root=data_root)
        except Exception as exc:  # noqa: BLE001 - a listing never shows a traceback; one row says what is wrong
            if raise_errors:
                raise
            why = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
            rows.append({"dataset": name, "description": recipe.description,
                         "notes": "unavailable: " + " ".join(why.split())})
            continue
        st = ds.stats()
        ref = f"paper: {paper['users']}/{paper['items']}/{paper['interactions']}" if paper else ""
        text = ", ".join(f"{k}: {v}" for k, v in ds.text_source.items())
        target, everyone, signal = popularity_signal(ds)
        rows.append({"dataset": name, "users": st["users"], "items": st["items"],
                     "interactions": st["interactions"], "sequences": st["sequences"], "sparsity": st["sparsity"],
                     "pop_target": target, "pop_all": everyone, "pop_signal": signal, "description": recipe.description,
                     "notes": "; ".join(x for x in (f"text from {text}", ref) if x)})
    return pd.DataFrame(rows, columns=["dataset", "users", "items", "interactions", "sequences", "sparsity",
                                       "pop_target", "pop_all", "pop_signal", "description", "notes"])
