"""The command line (`bench.py COMMAND --help`): argument parsing and printing only.

Commands: run, reproduce, status, datasets, methods, compare-protocols, significance, diversity, robustness, audit,
leaderboard."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path

from bench.errors import BenchError, MethodError

RESULTS_ENV = "LLMREC_RESULTS"


def default_out() -> str:
    """Where runs and reports go unless --out says otherwise: a git-ignored run folder. The published reference
    results (`results/`) are written only when asked for explicitly (--out results)."""
    return os.environ.get(RESULTS_ENV) or "runs"


def _check_data_root(data_root) -> None:
    if data_root is not None and not Path(data_root).is_dir():
        raise BenchError(f"--data-root {data_root}: no such folder")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise BenchError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def _overrides(items: list[str], method_names: list[str]) -> dict[str, dict]:
    from bench.method import coerce_param, get_method
    out: dict[str, dict] = {m: {} for m in method_names}
    for item in items or []:
        key, sep, value = item.partition("=")
        method, dot, param = key.partition(".")
        if not sep or not dot:
            raise BenchError(f"--set {item!r}: expected METHOD.PARAM=VALUE, e.g. sasrec.epochs=5")
        if method not in out:
            raise BenchError(f"--set {item!r}: method {method!r} is not in --methods ({', '.join(method_names)})")
        out[method][param] = coerce_param(get_method(method), param, value)
    return out


def cmd_run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from bench.data.recipe import load_recipe
    from bench.method import PROFILES, get_method
    from bench.executors import EXECUTORS, run_local, run_ray
    from bench.report.reference import compare_with_reference
    from bench.runner import Cell

    from bench.results import check_publishable, git_state, is_published
    from bench.training import showing_progress
    console = Console(stderr=True, soft_wrap=True)  # one summary line per cell, never wrapped
    _check_data_root(args.data_root)
    datasets = _csv(args.dataset)
    for d in datasets:
        load_recipe(d)  # unknown names fail here, before any work
    methods = _csv(args.methods)
    for m in methods:
        get_method(m)
    if args.profile not in PROFILES:
        raise BenchError(f"--profile {args.profile!r}: valid: {', '.join(PROFILES)}")
    if args.negatives < 1:
        raise BenchError(f"--negatives {args.negatives}: must be >= 1")
    if args.users is not None and args.users < 1:
        raise BenchError(f"--users {args.users}: must be >= 1")
    protocols = _protocols(args.protocol, args.sampler, args.negatives, args.users)
    overrides = _overrides(args.set, methods)
    for m in methods:  # bad parameter values and impossible protocols fail before any work
        get_method(m).from_profile(args.profile, **overrides[m])
        if any(p.mode == "full" for p in protocols) and not get_method(m).supports_full:
            raise BenchError(f"method {m} does not support full ranking; drop it or use --protocol sampled")
    cells = [Cell(d, m, s, protocols, args.profile, overrides[m]) for d in datasets for s in _seeds(args.seeds)
             for m in methods]
    if args.executor not in EXECUTORS:
        raise BenchError(f"--executor {args.executor!r}: valid: {', '.join(EXECUTORS)}")
    check_publishable(git_state(), Path(args.out))  # before any work; each cell checks again when it starts
    from bench.data.candidates import check_negatives
    from bench.data.prepare import load_dataset
    for d in datasets:  # bad data and impossible protocols: one line for the run, not one per cell
        ds = load_dataset(d, data_root=args.data_root)
        for p in protocols:
            if p.mode == "sampled":
                check_negatives(ds, p.n_negatives)
    if not is_published(Path(args.out)):
        console.print(f"results go to the run folder {args.out}/ (git-ignored); `--out results` publishes")
    failed, finished, warned = [], 0, set()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("cells", total=len(cells))
        scoring = progress.add_task("scoring", total=None, visible=False)

        @contextlib.contextmanager
        def epoch_bar(total, description):
            bar = progress.add_task(f"  {description}", total=total)
            try:
                yield lambda n=1: progress.advance(bar, n)
            finally:
                progress.remove_task(bar)

        def on_progress(stage, n, total):
            progress.update(scoring, total=total, advance=n, visible=True, description=f"  {stage} users")

        def on_outcome(o):
            nonlocal finished
            if o.status == "failed":
                failed.append(o)
                tries = f" after {o.attempts} attempts" if o.attempts > 1 else ""
                progress.console.print(f"[red]failed[/] {o.cell.dataset} {o.cell.method} seed {o.cell.seed}{tries}: "
                                       f"{o.error}", markup=True, highlight=False)
            for protocol, (status, result, folder) in zip(protocols, o.results):
                finished += 1
                progress.console.print(_summary(o.cell, protocol, status, result, folder,
                                                (result or {}).get("timings", {}).get("total_s", 0.0)))
                if status == "done":
                    warning = _text_warning(result)
                    if warning and result["dataset"]["name"] not in warned:
                        warned.add(result["dataset"]["name"])
                        progress.console.print(warning, highlight=False)
                    line = compare_with_reference(Path(folder), Path(args.out))
                    if line:
                        progress.console.print(f"  reference: {line}", highlight=False)
            progress.update(scoring, completed=0, visible=False)
            progress.advance(task)

        if args.executor == "ray":
            progress.update(task, description=f"ray: {len(cells)} cells")
            run_ray(cells, Path(args.out), data_root=args.data_root, force=args.force, address=args.ray_address,
                    on_outcome=on_outcome)
        else:
            with showing_progress(epoch_bar):
                for cell in cells:
                    progress.update(task, description=f"{cell.dataset} {cell.method} seed {cell.seed}")
                    run_local([cell], Path(args.out), data_root=args.data_root, force=args.force,
                              on_outcome=on_outcome, log=lambda msg: progress.console.print(msg, highlight=False),
                              on_progress=on_progress)
    if failed:
        saved = (f"the {finished} finished cell(s) are saved in {args.out}/" if finished else "nothing was saved")
        console.print(f"[red]{len(failed)} cell(s) failed[/]; {saved}. Fix the cause and re-run the same command; "
                      "finished cells are skipped.")
    if args.leaderboard and finished:
        for d in datasets:
            for protocol in protocols:
                try:
                    _leaderboard(Path(args.out), d, protocol.tag, None, console)
                except BenchError as exc:
                    if not failed:
                        raise
                    console.print(f"no leaderboard for {d} {protocol.tag}: {exc}")
    return 1 if failed else 0


def _protocols(modes: str, samplers: str, negatives: int, max_users: int | None = None):
    from bench.protocol import parse_protocols
    return parse_protocols(modes, samplers, negatives, max_users)


def _summary(cell, protocol, status, result, folder, seconds) -> str:
    head = f"{cell.dataset} {cell.method} seed {cell.seed} {protocol.tag}"
    if status == "skipped":
        return f"[dim]skip[/] {head}: finished earlier ({folder})"
    m = result["metrics"]
    auc = f"{m['auc']:.4f}" if m["auc"] is not None else "-"
    answers = (result.get("answers") or {}).get("greedy_answer_valid_rate")
    stopped = (result.get("training") or {}).get("budget_stopped")
    return (f"[green]done[/] {head}: AUC {auc} GAUC {m['gauc']:.4f} HR@10 {m['hr@10']:.4f} "
            f"NDCG@10 {m['ndcg@10']:.4f} MRR {m['mrr']:.4f}"
            + (f" greedy yes/no answers {answers:.1%}" if answers is not None else "") + f" ({seconds:.1f}s)"
            + (" [yellow]budget-stopped by the wall-clock safety stop: not reproducible[/]" if stopped else ""))


def _text_warning(result: dict) -> str | None:
    """Items without text matter to text-based methods: said once per dataset in the run summary."""
    ds = result.get("dataset") or {}
    n = ds.get("items_without_text") or 0
    if not n:
        return None
    total = (ds.get("stats") or {}).get("items", "?")
    return (f"[yellow]warning[/]: {n} of {total} items of dataset {ds.get('name')} have no text "
            f"(text fields used: {ds.get('text_source')}); text-based methods see an empty title for them")


def _leaderboard(out: Path, dataset: str, protocol: str, target: str | None, console) -> None:
    from bench.data.recipe import load_recipe
    from bench.report.leaderboard import build, render, write
    name = load_recipe(dataset).name
    lb = build(out, name, protocol, target)
    paths = write(lb, out)
    print(render(lb, "md"))
    console.print("written: " + ", ".join(str(p) for p in paths))


def cmd_compare_protocols(args) -> int:
    from rich.console import Console
    from bench.data.recipe import load_recipe
    from bench.report.protocols import compare, write
    console = Console(stderr=True)
    name = load_recipe(args.dataset).name
    if args.run:
        args.protocol, args.sampler, args.leaderboard, args.users = "full,sampled", "uniform,popularity", False, None
        cmd_run(args)
    table = compare(Path(args.out), name, _csv(args.methods) if args.methods else None, args.negatives, args.metric)
    paths = write(table, Path(args.out), name)
    print(table.markdown)
    console.print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_significance(args) -> int:
    from rich.console import Console
    from bench.data.recipe import load_recipe
    from bench.report.significance import compare
    name = load_recipe(args.dataset).name
    paths = []
    for metric in _csv(args.metric):
        report = compare(Path(args.out), name, args.protocol, metric, reference=args.reference,
                         all_pairs=args.all_pairs, alpha=args.alpha, test=args.test)
        print(report.to_markdown())
        paths += report.write(Path(args.out))
    Console(stderr=True).print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_diversity(args) -> int:
    from bench.data.prepare import load_dataset
    from bench.data.view import FitData
    from bench.method import get_method
    from methods.ganprompt.diversity import check_method, run
    from rich.console import Console
    console = Console(stderr=True)
    overrides = _overrides(args.set, [args.method])[args.method]
    method = get_method(args.method).from_profile(args.profile, **overrides)
    check_method(method)  # before the data is loaded
    ds = load_dataset(args.dataset, data_root=args.data_root)
    data = FitData.from_dataset(ds, seed=args.seed, log=lambda m: console.print(m, highlight=False))
    out = Path(args.out) / ds.name / "diversity" / f"{args.method}-{args.profile}-seed{args.seed}"
    result = run(data, method, out, n_eval=args.samples)
    print(result["markdown"])
    console.print(f"written: {out}/diversity.md, diversity.csv, diversity.json, {result['png'].name}")
    return 0


def cmd_robustness(args) -> int:
    from rich.console import Console
    from bench.data.recipe import load_recipe
    from bench.lm.perturb import variants
    from bench.report.robustness import build, write
    from bench.method import get_method
    from bench.runner import Cell, run_cell
    console = Console(stderr=True)
    name = load_recipe(args.dataset).name
    methods = _csv(args.methods)
    protocol = _protocols("sampled", args.sampler, args.negatives, args.users)[0]
    overrides = _overrides(args.set, methods)
    for m in methods:  # PDR is a drop from the template a model was trained on: train every method on --seen
        fields = {f.name for f in dataclasses.fields(get_method(m).Params)}
        if "template" not in fields:
            continue
        if overrides[m].get("template", args.seen) != args.seen:
            raise BenchError(f"--set {m}.template={overrides[m]['template']} conflicts with --seen {args.seen}: the "
                             "robustness suite measures drops from the template each method was trained on")
        own = get_method(m).from_profile(args.profile).params.template
        if own != args.seen:
            overrides[m]["template"] = args.seen
            console.print(f"{m}: trained on the seen template {args.seen!r} for the robustness suite "
                          f"(its own default is {own!r})")
    if args.run:
        chosen = tuple(variants(args.seen, args.seed_perturb, args.variants))
        for m in methods:
            for seed in _seeds(args.seeds):
                cell = Cell(args.dataset, m, seed, (protocol,), args.profile, overrides[m], variants=chosen)
                outcomes = run_cell(cell, Path(args.out), data_root=args.data_root, force=args.force,
                                    log=lambda msg: console.print(msg, highlight=False))
                for v, (status, result, _) in zip(chosen, outcomes):
                    value = result["metrics"][args.metric] if result else None
                    console.print(f"{status} {m} seed {seed} {v.id}: "
                                  + (f"{args.metric} {value:.4f}" if value is not None else "finished earlier"))
    pair = tuple(_csv(args.pair)) if args.pair else None
    if pair and len(pair) != 2:
        raise BenchError(f"--pair {args.pair!r}: expected two methods, e.g. ganprompt,tallrec")
    report = build(Path(args.out), name, protocol.tag, args.metric, pair, args.seen)
    paths = write(report, Path(args.out))
    print(report.markdown())
    console.print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_reproduce(args) -> int:
    from rich.console import Console
    from bench.report.reproduce import paper_methods, paper_table, write
    paper_table(args.table)  # unknown tables fail before any work
    if args.profile == "quick" and args.users is None and args.negatives == 99:
        # the CPU budget: every method, baselines included, on the same 100 users x 20 candidates
        args.users, args.negatives = 100, 19
    args.dataset = args.dataset or args.table
    args.methods = args.methods or ",".join(paper_methods())
    args.protocol, args.sampler, args.leaderboard = "sampled", "uniform", False
    if args.run:
        cmd_run(args)
    protocol = _protocols("sampled", "uniform", args.negatives, args.users)[0]
    from bench.data.recipe import load_recipe
    md, paths = write(Path(args.out), load_recipe(args.dataset).name, args.table, protocol.tag)
    print(md)
    Console(stderr=True).print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_status(args) -> int:
    from tabulate import tabulate
    from bench.executors import grid_status
    rows = grid_status(Path(args.out), args.dataset)
    if not rows:
        raise BenchError(f"no cells under {args.out}" + (f"/{args.dataset}" if args.dataset else ""))
    print(tabulate([[r["cell"], r["state"], "-" if r["seconds"] is None else f"{r['seconds']:.1f}", r["detail"]]
                    for r in rows], headers=["cell", "state", "seconds", "detail"], tablefmt="github"))
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    print("\n" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return 0


def cmd_leaderboard(args) -> int:
    from rich.console import Console
    _leaderboard(Path(args.out), args.dataset, args.protocol, args.target, Console(stderr=True))
    return 0


def cmd_audit(args) -> int:
    from bench.report.audit import audit, summary_lines
    rep = audit(Path(args.out))
    for line in summary_lines(rep):
        print(line)
    return 1 if rep.failures else 0


def cmd_datasets(args) -> int:
    from tabulate import tabulate
    from bench.data.prepare import load_dataset
    from bench.data.recipe import available_recipes, load_recipe
    _check_data_root(args.data_root)
    rows = []
    names = _csv(args.dataset) if args.dataset else available_recipes()
    for name in names:
        recipe = load_recipe(name)
        paper = recipe.paper_counts or {}
        try:
            ds = load_dataset(recipe, data_root=args.data_root)
        except Exception as exc:  # noqa: BLE001 - a listing never shows a traceback; one row says what is wrong
            if args.debug:
                raise
            why = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
            rows.append([name, "-", "-", "-", "-", "-", "unavailable: " + " ".join(why.split())])
            continue
        st = ds.stats()
        ref = f"paper: {paper['users']}/{paper['items']}/{paper['interactions']}" if paper else ""
        text = ", ".join(f"{k}: {v}" for k, v in ds.text_source.items())
        rows.append([name, st["users"], st["items"], st["interactions"], st["sequences"], f"{100 * st['sparsity']:.2f}%",
                     "; ".join(x for x in (f"text from {text}", ref) if x)])
    print(tabulate(rows, headers=["Dataset", "#User", "#Item", "#Interaction", "#Seq", "Sparsity", "Notes"],
                   tablefmt="github"))
    return 0


def cmd_methods(args) -> int:
    from tabulate import tabulate
    from bench.method import available, get_method
    if args.name:
        cls = get_method(args.name)
        rows = [[f.name, repr(f.default) if f.default is not dataclasses.MISSING else "(required)",
                 cls.profiles.get("quick", {}).get(f.name, ""), cls.profiles.get("paper", {}).get(f.name, ""),
                 _valid_text(f), f.metadata.get("help", "")]
                for f in dataclasses.fields(cls.Params)]
        print(f"{cls.name} ({cls.kind}): {cls.description}")
        print(tabulate(rows, headers=["param", "default", "quick", "paper", "valid", "help"], tablefmt="github"))
        return 0
    rows = []
    for name in available():
        cls = get_method(name)
        rows.append([name, cls.kind, "yes" if cls.supports_full else "no", cls.description])
    print(tabulate(rows, headers=["Method", "Kind", "Full ranking", "Description"], tablefmt="github"))
    return 0


def _valid_text(f) -> str:
    """What a Params field accepts, from its metadata (the same declaration Method.__init__ checks)."""
    from bench.method import valid_choices
    choices = valid_choices(f)
    if choices is not None:
        return ("each of: " if f.metadata.get("each") else "") + ", ".join(map(str, choices))
    if "pattern" in f.metadata:
        return f.metadata["pattern"][1]
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    return " ".join(x for x in (f">= {lo}" if lo is not None else "", f"<= {hi}" if hi is not None else "") if x)


def _run_args(r) -> None:
    r.add_argument("--dataset", default="ml-100k", help="recipe name(s), comma-separated (see `bench.py datasets`)")
    r.add_argument("--methods", default="random,pop,sasrec", help="method names, comma-separated (see `bench.py methods`)")
    r.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    r.add_argument("--negatives", type=int, default=99, help="negatives per user in sampled mode")
    r.add_argument("--users", type=int, default=None,
                   help="evaluate a seeded subsample of N test users, the same for every method (CPU budget for LLMs)")
    r.add_argument("--profile", default="quick", help="quick (CPU budget) or paper (the paper's settings, for a GPU)")
    r.add_argument("--set", action="append", metavar="METHOD.PARAM=VALUE", help="override a method parameter")
    r.add_argument("--out", default=default_out(), help=f"results root (default: ${RESULTS_ENV} or runs/, git-ignored; `results` publishes)")
    r.add_argument("--data-root", default=None, help="folder holding the datasets (else $LLMREC_DATA_ROOT, else the recipe's)")
    r.add_argument("--force", action="store_true", help="re-run cells that are already finished")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.py", description="Benchmark harness for LLM-based recommendation.")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train and score methods on a dataset; results go under --out")
    _run_args(r)
    r.add_argument("--protocol", default="sampled",
                   help="sampled (1 positive + N negatives per user), full (rank all items), or both: sampled,full; "
                        "exact tags such as sampled-uniform-n19-u100 may be added; one training serves every protocol")
    r.add_argument("--sampler", default="uniform", help="negative sampler(s): uniform, popularity, or uniform,popularity")
    r.add_argument("--no-leaderboard", dest="leaderboard", action="store_false", help="skip the leaderboard at the end")
    r.add_argument("--executor", default="local", help="local (sequential) or ray (each cell a Ray task)")
    r.add_argument("--ray-address", default=None, help="address of a running Ray cluster (default: start a local one)")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("reproduce", help="run the grid of a paper table and render it beside the published numbers")
    rp.add_argument("--table", required=True, help="beauty, toys or sports")
    _run_args(rp)
    rp.set_defaults(dataset=None, methods=None)
    rp.add_argument("--executor", default="local")
    rp.add_argument("--ray-address", default=None)
    rp.add_argument("--no-run", dest="run", action="store_false", help="only render from stored results")
    rp.set_defaults(func=cmd_reproduce)

    st = sub.add_parser("status", help="every cell under the results root: done / running / interrupted / failed")
    st.add_argument("--dataset", default=None)
    st.add_argument("--out", default=default_out())
    st.set_defaults(func=cmd_status)

    d = sub.add_parser("datasets", help="the paper's Table 1 columns for each recipe")
    d.add_argument("--dataset", default=None, help="only these recipes (comma-separated)")
    d.add_argument("--data-root", default=None)
    d.set_defaults(func=cmd_datasets)

    m = sub.add_parser("methods", help="list registered methods, or one method's parameters")
    m.add_argument("name", nargs="?", help="show this method's parameters and profiles")
    m.set_defaults(func=cmd_methods)

    cp = sub.add_parser("compare-protocols", help="the same trained models under full ranking, uniform-N and "
                                                  "popularity-N candidates, with Kendall tau between the orderings")
    _run_args(cp)
    cp.add_argument("--metric", default="ndcg@10", help="metric used to order the methods")
    cp.add_argument("--no-run", dest="run", action="store_false", help="only read stored results")
    cp.set_defaults(func=cmd_compare_protocols)

    sg = sub.add_parser("significance", help="paired tests of every method against the best baseline, from stored "
                                             "per-user results (t-test, Wilcoxon, Holm, bootstrap CI, effect size)")
    sg.add_argument("--dataset", required=True)
    sg.add_argument("--protocol", default="sampled-uniform-n99", help="protocol tag: sampled-<sampler>-n<N> or full")
    sg.add_argument("--metric", default="ndcg@10,hr@10,mrr", help="metric(s), comma-separated")
    sg.add_argument("--reference", default=None, help="compare every method with this one instead of the best baseline")
    sg.add_argument("--all-pairs", action="store_true", help="compare every pair of methods")
    sg.add_argument("--test", default="wilcoxon", help="test whose p-values are Holm-corrected: wilcoxon or ttest")
    sg.add_argument("--alpha", type=float, default=0.05)
    sg.add_argument("--out", default=default_out())
    sg.set_defaults(func=cmd_significance)

    dv = sub.add_parser("diversity", help="RQ2: encoder embeddings of the K+1 attribute variants before and after "
                                          "GANPrompt's stage 1 (t-SNE PNG, silhouette, cosine and JS distances)")
    dv.add_argument("--dataset", required=True)
    dv.add_argument("--method", default="ganprompt", help="ganprompt or one of its ablations with attributes")
    dv.add_argument("--profile", default="quick")
    dv.add_argument("--seed", type=int, default=0)
    dv.add_argument("--samples", type=int, default=60, help="evaluation samples (each with K+1 variants)")
    dv.add_argument("--set", action="append", metavar="METHOD.PARAM=VALUE")
    dv.add_argument("--out", default=default_out())
    dv.add_argument("--data-root", default=None)
    dv.set_defaults(func=cmd_diversity)

    rb = sub.add_parser("robustness", help="RQ1: score prompt-based methods under held-out templates and "
                                           "perturbations; mean/std/worst, PDR, PNG, paired tests")
    _run_args(rb)
    rb.set_defaults(methods="ganprompt,tallrec")
    rb.add_argument("--sampler", default="uniform", help="negative sampler")
    rb.add_argument("--metric", default="ndcg@10")
    rb.add_argument("--seen", default="seen-0", help="the template the methods were trained on")
    rb.add_argument("--variants", default="all", help="all, templates or perturbations")
    rb.add_argument("--seed-perturb", type=int, default=0, help="seed of the random perturbations")
    rb.add_argument("--pair", default=None, help="two methods to test per variant, e.g. ganprompt,tallrec")
    rb.add_argument("--no-run", dest="run", action="store_false", help="only report stored results")
    rb.set_defaults(func=cmd_robustness)

    au = sub.add_parser("audit", help="check the published results: invariants, one candidate file and user set per "
                                      "(dataset, protocol, seed), clean provenance taken at the start, params vs "
                                      "the current profile, compact per-user files; exit 1 on failure")
    au.add_argument("--out", default="results", help="results root to audit (default: the published results/)")
    au.set_defaults(func=cmd_audit)

    lb = sub.add_parser("leaderboard", help="render the paper-style table from stored results")
    lb.add_argument("--dataset", required=True)
    lb.add_argument("--protocol", default="sampled-uniform-n99", help="protocol tag: sampled-<sampler>-n<N> or full")
    lb.add_argument("--target", default=None, help="method whose Improvement (%%) over the best baseline is shown")
    lb.add_argument("--out", default=default_out())
    lb.set_defaults(func=cmd_leaderboard)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (BenchError, MethodError) as exc:
        if args.debug or os.environ.get("LLMREC_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; run the same command again to resume", file=sys.stderr)
        return 130
