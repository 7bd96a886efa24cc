"""The command line (`bench.py COMMAND --help`): argument parsing and printing over bench.api, which holds the logic.

Commands: run, reproduce, status, datasets, methods, check-method, compare-protocols, significance, diversity,
robustness, history-probe, audit, reports, derive, curves, leaderboard."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path

from bench import api
from bench.api import RESULTS_ENV, default_out  # noqa: F401  (default_out was importable from here)
from bench.errors import BenchError


def _grid_options(args) -> dict:
    """The options every command that runs a grid shares, as bench.api keywords."""
    return dict(methods=args.methods, seeds=args.seeds, negatives=args.negatives, users=args.users,
                profile=args.profile, overrides=args.set, out=args.out, data_root=args.data_root, force=args.force)


@contextlib.contextmanager
def _display(out: str, leaderboard_protocols: bool = False):
    """Progress bars, one summary line per cell and its comparison with the reference cell, around a grid run.
    Yields the callbacks for bench.api.run (on_plan, on_start, on_outcome, log, on_progress)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from bench.report.reference import compare_with_reference
    from bench.results import is_published
    from bench.training import showing_progress
    console = Console(stderr=True, soft_wrap=True)  # one summary line per cell, never wrapped
    warned = set()
    # started once the plan is validated, so that a bad option prints its one line and no empty bar
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=False)
    task = progress.add_task("cells", total=None)
    scoring = progress.add_task("scoring", total=None, visible=False)
    try:

        @contextlib.contextmanager
        def epoch_bar(total, description):
            bar = progress.add_task(f"  {description}", total=total)
            try:
                yield lambda n=1: progress.advance(bar, n)
            finally:
                progress.remove_task(bar)

        def on_plan(plan):
            progress.start()
            progress.update(task, total=len(plan.cells),
                            description=f"ray: {len(plan.cells)} cells" if plan.executor == "ray" else "cells")
            if not is_published(plan.out):
                console.print(f"results go to the run folder {out}/ (git-ignored); `--out results` publishes")

        def on_start(cell):
            progress.update(task, description=f"{cell.dataset} {cell.method} seed {cell.seed}")

        def on_progress(stage, n, total):
            progress.update(scoring, total=total, advance=n, visible=True, description=f"  {stage} users")

        def on_outcome(o):
            if o.status == "failed":
                tries = f" after {o.attempts} attempts" if o.attempts > 1 else ""
                progress.console.print(f"[red]failed[/] {o.cell.dataset} {o.cell.method} seed {o.cell.seed}{tries}: "
                                       f"{o.error}", markup=True, highlight=False)
            for protocol, (status, result, folder) in zip(o.cell.protocols, o.results):
                progress.console.print(_summary(o.cell, protocol, status, result, folder,
                                                (result or {}).get("timings", {}).get("total_s", 0.0)))
                if status == "done":
                    warning = _text_warning(result)
                    if warning and result["dataset"]["name"] not in warned:
                        warned.add(result["dataset"]["name"])
                        progress.console.print(warning, highlight=False)
                    line = compare_with_reference(Path(folder), Path(out))
                    if line:
                        progress.console.print(f"  reference: {line}", highlight=False)
            progress.update(scoring, completed=0, visible=False)
            progress.advance(task)

        with showing_progress(epoch_bar):
            yield dict(on_plan=on_plan, on_start=on_start, on_outcome=on_outcome, on_progress=on_progress,
                       log=lambda msg: progress.console.print(msg, highlight=False))
    finally:
        if progress.live.is_started:
            progress.stop()


def _report_failures(result, console) -> None:
    if result is not None and result.failed:
        saved = (f"the {result.finished} finished cell(s) are saved in {result.plan.out}/" if result.finished
                 else "nothing was saved")
        console.print(f"[red]{len(result.failed)} cell(s) failed[/]; {saved}. Fix the cause and re-run the same "
                      "command; finished cells are skipped.")


def _written(paths) -> None:
    from rich.console import Console
    Console(stderr=True).print("written: " + ", ".join(str(p) for p in paths))


def cmd_run(args) -> int:
    from rich.console import Console
    from bench.report.leaderboard import render
    console = Console(stderr=True, soft_wrap=True)
    if args.dry_run:
        from tabulate import tabulate
        plan = api.plan_run(args.dataset, protocol=args.protocol, sampler=args.sampler, executor=args.executor,
                            ray_address=args.ray_address, check_git=False, **_grid_options(args))
        state = api.plan_state(plan)
        shown = state.astype({"fit_min_est": object, "score_min_est": object})
        for column in ("fit_min_est", "score_min_est"):
            shown.loc[state[column].isna(), column] = None  # shown as "-"
        print(tabulate(shown, headers="keys", tablefmt="github", showindex=False, missingval="-"))
        todo = state[state["state"] == "to run"]
        fits = todo.drop_duplicates(["dataset", "method", "seed"])
        trained = fits[fits["fit"] != "saved"]
        known = trained.dropna(subset=["fit_min_est"])
        scaled = int(known["est_from"].str.startswith("scaled").sum())
        print(f"\n{len(state) - len(todo)} of {len(state)} results finished; {len(todo)} to run "
              f"({len(fits)} fits) under {plan.out}")
        if len(trained):
            timed = (f"{len(known)} of them about {known['fit_min_est'].sum():.0f} min in all, by the fit times their "
                     f"finished seeds recorded ({scaled} scaled from another dataset by its interaction count, rough: "
                     "models with a softmax over all items take longer; wall clock, under the load of that day); " if len(known) else "")
            print(f"fits to train: {len(trained)}; {timed}{len(trained) - len(known)} fit(s) with no record yet")
        scored = todo.dropna(subset=["score_min_est"])
        if len(scored):
            worst = scored.loc[scored["score_min_est"].idxmax()]
            print(f"test scoring, after the fits: about {scored['score_min_est'].sum():.0f} min for the {len(scored)} "
                  f"of {len(todo)} results with a record of the same method and work (seconds per scored "
                  f"(user, item) pair, scaled by pairs); the longest, {worst['method']} seed {worst['seed']} "
                  f"{worst['protocol']} on {worst['dataset']}: about {worst['score_min_est'] / 60:.1f} h")
        return 0
    with _display(args.out) as callbacks:
        result = api.run(dataset=args.dataset, protocol=args.protocol, sampler=args.sampler, executor=args.executor,
                         ray_address=args.ray_address, **_grid_options(args), **callbacks)
    _report_failures(result, console)
    if args.leaderboard and result.finished:
        for d in result.plan.datasets:
            for protocol in result.plan.protocols:
                try:
                    lb = api.leaderboard(d, protocol.tag, out=args.out)
                except BenchError as exc:
                    if not result.failed:
                        raise
                    console.print(f"no leaderboard for {d} {protocol.tag}: {exc}")
                    continue
                print(render(lb, "md"))
                _written(lb.written)
    return 1 if result.failed else 0


def _summary(cell, protocol, status, result, folder, seconds) -> str:
    from bench.results import stages_kept_at_start
    head = f"{cell.dataset} {cell.method} seed {cell.seed} {protocol.tag}"
    if status == "skipped":
        return f"[dim]skip[/] {head}: finished earlier ({folder})"
    m = result["metrics"]
    auc = f"{m['auc']:.4f}" if m["auc"] is not None else "-"
    answers = (result.get("answers") or {}).get("greedy_answer_valid_rate")
    stopped = (result.get("training") or {}).get("budget_stopped")
    kept = stages_kept_at_start(result.get("training"))
    return (f"[green]done[/] {head}: AUC {auc} GAUC {m['gauc']:.4f} HR@10 {m['hr@10']:.4f} "
            f"NDCG@10 {m['ndcg@10']:.4f} MRR {m['mrr']:.4f}"
            + (f" greedy yes/no answers {answers:.1%}" if answers is not None else "") + f" ({seconds:.1f}s)"
            + (" [yellow]budget-stopped by the wall-clock safety stop: not reproducible[/]" if stopped else "")
            + (f" [yellow]{', '.join(kept)} kept its starting state (validation never beat step 0): what it trains is "
               "not in the scores[/]" if kept else ""))


def _text_warning(result: dict) -> str | None:
    """Items without text matter to text-based methods: said once per dataset in the run summary."""
    ds = result.get("dataset") or {}
    n = ds.get("items_without_text") or 0
    if not n:
        return None
    total = (ds.get("stats") or {}).get("items", "?")
    return (f"[yellow]warning[/]: {n} of {total} items of dataset {ds.get('name')} have no text "
            f"(text fields used: {ds.get('text_source')}); text-based methods see an empty title for them")


def cmd_leaderboard(args) -> int:
    from bench.report.leaderboard import render
    lb = api.leaderboard(args.dataset, args.protocol, args.target, out=args.out)
    print(render(lb, "md"))
    _written(lb.written)
    return 0


def cmd_curves(args) -> int:
    report = api.curves(args.dataset, args.protocol, out=args.out)
    print(report.to_markdown())
    _written(report.written)
    return 0


def cmd_compare_protocols(args) -> int:
    with (_display(args.out) if args.run else contextlib.nullcontext({})) as callbacks:
        table = api.compare_protocols(args.dataset, metric=args.metric, run=args.run, executor=args.executor,
                                      ray_address=args.ray_address, **_grid_options(args), **callbacks)
    print(table.markdown)
    _written(table.written)
    return 0


def cmd_significance(args) -> int:
    paths = []
    for metric in api._names(args.metric, "--metric"):
        report = api.significance(args.dataset, args.protocol, metric, reference=args.reference,
                                  all_pairs=args.all_pairs, test=args.test, alpha=args.alpha, out=args.out,
                                  methods=args.methods)
        print(report.to_markdown())
        paths += report.written
    _written(paths)
    return 0


def cmd_diversity(args) -> int:
    from rich.console import Console
    console = Console(stderr=True)
    result = api.diversity(args.dataset, args.method, args.profile, args.seed, args.samples, overrides=args.set,
                           out=args.out, data_root=args.data_root, log=lambda m: console.print(m, highlight=False))
    print(result["markdown"])
    console.print(f"written: {result['folder']}/diversity.md, diversity.csv, diversity.json, {result['png'].name}")
    return 0


def cmd_history_probe(args) -> int:
    from rich.console import Console
    console = Console(stderr=True)
    probe = api.history_probe(args.dataset, args.method, args.seed, args.protocol, args.users, args.profile,
                              overrides=args.set, swap_seed=args.swap_seed, out=args.out, data_root=args.data_root,
                              log=lambda m: console.print(m, markup=False, highlight=False))
    print(probe.markdown)
    _written(probe.written)
    return 0


def cmd_robustness(args) -> int:
    from rich.console import Console
    console = Console(stderr=True)
    report = api.robustness(args.dataset, sampler=args.sampler, metric=args.metric, seen=args.seen,
                            variants=args.variants, seed_perturb=args.seed_perturb, pair=args.pair,
                            templates=args.templates, run=args.run,
                            log=lambda msg: console.print(msg, highlight=False), **_grid_options(args))
    print(report.markdown())
    _written(report.written)
    return 0


def cmd_reproduce(args) -> int:
    from rich.console import Console
    with (_display(args.out) if args.run else contextlib.nullcontext({})) as callbacks:
        rep = api.reproduce(args.table, dataset=args.dataset, run=args.run, executor=args.executor,
                            ray_address=args.ray_address, **_grid_options(args), **callbacks)
    _report_failures(rep.run, Console(stderr=True))
    print(rep.markdown)
    _written(rep.written)
    return 0


def cmd_status(args) -> int:
    from tabulate import tabulate
    if args.grid:
        print(tabulate(api.seed_grid(args.out, args.dataset), headers="keys", tablefmt="github", showindex=False,
                       disable_numparse=True))  # seeds "1" stay text, aligned like "0,1,2"
        return 0
    df = api.status(args.out, args.dataset)
    print(tabulate([[r.cell, r.state, "-" if r.seconds is None or r.seconds != r.seconds else f"{r.seconds:.1f}",
                     r.detail] for r in df.itertuples()], headers=["cell", "state", "seconds", "detail"],
                   tablefmt="github"))
    counts = df["state"].value_counts().sort_index()
    print("\n" + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def cmd_audit(args) -> int:
    from bench.report.audit import summary_lines
    rep = api.audit(args.out, reports=args.reports)
    for line in summary_lines(rep):
        print(line)
    return 1 if rep.failures else 0


def cmd_reports(args) -> int:
    rows = api.reports(args.out, args.dataset)
    for file, state in rows:
        if state != "unchanged":
            print(f"{file}: {state}")
    failed = [f for f, state in rows if state not in ("rewritten", "unchanged")]
    rewritten = sum(state == "rewritten" for _, state in rows)
    print(f"reports: {len(rows)} rebuilt from their cells, {rewritten} rewritten, {len(failed)} cannot be rebuilt")
    return 1 if failed else 0


def cmd_derive(args) -> int:
    from rich.console import Console
    console = Console(stderr=True, soft_wrap=True)
    written = api.derive(args.dataset, args.to, methods=args.methods, out=args.out, force=args.force,
                         log=lambda message: console.print(message, markup=False, highlight=False))
    print(f"{len(written)} cell(s) of {args.to} derived under {args.out}/{args.dataset}")
    return 0


def cmd_datasets(args) -> int:
    from tabulate import tabulate
    df = api.datasets(args.dataset, data_root=args.data_root, raise_errors=args.debug)
    missing = df["users"].isna()
    rows = [[r.dataset, *(["-"] * 6 if gone else [
                int(r.users), int(r.items), int(r.interactions), int(r.sequences), f"{100 * r.sparsity:.2f}%",
                f"{r.pop_signal:.2f} ({r.pop_target:.1f}/{r.pop_all:.1f})"]), r.notes]
            for r, gone in zip(df.itertuples(), missing)]
    print(tabulate(rows, headers=["Dataset", "#User", "#Item", "#Interaction", "#Seq", "Sparsity",
                                  "Pop. signal (test/all)", "Notes"], tablefmt="github"))
    print("\n" + POP_SIGNAL_NOTE + "\n")
    for r in df.itertuples():
        if r.description:
            print(f"- {r.dataset}: {r.description}")
    return 0


POP_SIGNAL_NOTE = ("Pop. signal (test/all): the mean training count of the test target items / the mean training count "
                   "of all the set's items (items without a training interaction count as 0), on the harness's "
                   "leave-one-out split (training = all but each user's last two items, test target = the last). "
                   "1.0: the targets are no more popular than an average item, so popularity gives no signal.")


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


def cmd_check_method(args) -> int:
    from rich.console import Console
    console = Console(stderr=True)
    df = api.check_method(args.name, overrides=args.set, profile=args.profile,
                          log=lambda m: console.print(m, highlight=False) if args.verbose else None)
    for r in df.itertuples():
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.check}" + (f": {r.detail}" if r.detail else ""))
    bad = int((~df["ok"]).sum())
    print(f"check-method {args.name}: "
          + (f"{bad} of {len(df)} checks failed" if bad else f"all {len(df)} checks pass"))
    return 1 if bad else 0


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


# ---- shared parent parsers: each option is declared once ----
def _parent(*options) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    for flags, kwargs in options:
        p.add_argument(*flags, **kwargs)
    return p


def _out(default: str | None = None, what: str = "results root") -> argparse.ArgumentParser:
    return _parent((["--out"], dict(default=default or default_out(),
                                    help=f"{what} (default: ${RESULTS_ENV} or runs/, git-ignored; `results` is the "
                                         "published results)" if default is None else f"{what} (default: {default})")))


def _dataset(required: bool = False, default: str | None = None, what: str = "recipe name") -> argparse.ArgumentParser:
    return _parent((["--dataset"], dict(required=required, default=default,
                                        help=f"{what} (see `bench.py datasets`)")))


# Factories, not shared instances: argparse's parents share their action objects, so one command's set_defaults
# would change another's defaults.
def _data_root() -> argparse.ArgumentParser:
    return _parent((["--data-root"], dict(default=None, help="folder holding the datasets (else $LLMREC_DATA_ROOT, "
                                                             "else the recipe's)")))


def _executor() -> argparse.ArgumentParser:
    return _parent((["--executor"], dict(default="local", help="local (sequential) or ray (each cell a Ray task)")),
                   (["--ray-address"], dict(default=None, help="address of a running Ray cluster (default: start a "
                                                               "local one)")))


def _grid() -> list[argparse.ArgumentParser]:
    """What every command that trains a grid shares: methods, seeds, budget, overrides, --out, --data-root."""
    options = _parent(
        (["--methods"], dict(default="random,pop,sasrec", help="method names, comma-separated (see `bench.py "
                                                               "methods`)")),
        (["--seeds"], dict(default="0", help="comma-separated seeds, e.g. 0,1,2")),
        (["--negatives"], dict(type=int, default=99, help="negatives per user in sampled mode")),
        (["--users"], dict(type=int, default=None, help="evaluate a seeded subsample of N test users, the same for "
                                                        "every method (CPU budget for LLMs)")),
        (["--profile"], dict(default="quick", help="quick (CPU budget) or paper (the paper's settings, for a GPU)")),
        (["--set"], dict(action="append", metavar="METHOD.PARAM=VALUE", help="override a method parameter")),
        (["--force"], dict(action="store_true", help="re-run cells that are already finished")))
    return [options, _out(), _data_root()]


class _Sub:
    """Every command takes --include and --debug (the shared parent), before or after the command name."""

    def __init__(self, sub):
        self.sub = sub

    def add_parser(self, name, parents=(), **kwargs):
        common = _parent((["--include"], dict(action="append", metavar="PATH", default=None,
                                              help="load plugin methods / recipes / templates from a .py file or "
                                                   "folder (repeatable)")),
                         (["--debug"], dict(action="store_true", default=argparse.SUPPRESS,
                                            help="show tracebacks instead of one-line errors")))
        return self.sub.add_parser(name, parents=[*parents, common], **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.py", description="Benchmark harness for LLM-based recommendation.")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = _Sub(p.add_subparsers(dest="command", required=True))

    r = sub.add_parser("run", help="train and score methods on a dataset; results go under --out",
                       parents=[_dataset(default="ml-100k", what="recipe name(s), comma-separated"), *_grid(),
                                _executor()])
    r.add_argument("--protocol", default="sampled",
                   help="sampled (1 positive + N negatives per user), full (rank all items), or both: sampled,full; "
                        "exact tags such as sampled-uniform-n19-u100 may be added; one training serves every protocol")
    r.add_argument("--sampler", default="uniform",
                   help="negative sampler(s): uniform, popularity, or uniform,popularity")
    r.add_argument("--no-leaderboard", dest="leaderboard", action="store_false", help="skip the leaderboard at the end")
    r.add_argument("--dry-run", action="store_true",
                   help="list every (cell, protocol) of the grid as finished / to run, whether its fit is saved or "
                        "resumable, and the fit time its method's finished seeds recorded (else a record on another "
                        "dataset scaled by interactions), without running anything")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("reproduce", help="run the grid of a paper table and render it beside the published numbers",
                        parents=[_dataset(what="recipe (default: the table's)"), *_grid(), _executor()])
    rp.add_argument("--table", required=True, help="beauty, toys or sports")
    rp.add_argument("--no-run", dest="run", action="store_false", help="only render from stored results")
    # the paper's methods; quick profile: 300 users x 19 negatives unless --users / --negatives say otherwise
    rp.set_defaults(func=cmd_reproduce, methods=None, negatives=None)

    st = sub.add_parser("status", help="every cell under the results root: done / running / interrupted / failed",
                        parents=[_dataset(what="only this dataset's cells"), _out()])
    st.add_argument("--grid", action="store_true",
                    help="instead: the finished seeds of each method configuration under each protocol, per dataset")
    st.set_defaults(func=cmd_status)

    d = sub.add_parser("datasets", help="the paper's Table 1 columns and the popularity signal for each recipe",
                       description=POP_SIGNAL_NOTE,
                       parents=[_dataset(what="only these recipes (comma-separated)"), _data_root()])
    d.set_defaults(func=cmd_datasets)

    m = sub.add_parser("methods", help="list registered methods, or one method's parameters")
    m.add_argument("name", nargs="?", help="show this method's parameters and profiles")
    m.set_defaults(func=cmd_methods)

    ck = sub.add_parser("check-method", help="run the conformance checks of the built-in methods on one method (a "
                                             "plugin's, with --include): contract, parameters, a fit on a tiny "
                                             "MovieLens slice, scores, save/load")
    ck.add_argument("name", help="the method's registered name")
    ck.add_argument("--profile", default="quick", help="profile whose values the fit uses (quick or paper)")
    ck.add_argument("--set", action="append", metavar="METHOD.PARAM=VALUE",
                    help="override a parameter, e.g. to make the check's fit small")
    ck.add_argument("--verbose", action="store_true", help="show the method's training log")
    ck.set_defaults(func=cmd_check_method)

    cp = sub.add_parser("compare-protocols", help="the same trained models under full ranking, uniform-N and "
                                                  "popularity-N candidates, with Kendall tau between the orderings",
                        parents=[_dataset(default="ml-100k"), *_grid(), _executor()])
    cp.add_argument("--metric", default="ndcg@10", help="metric used to order the methods")
    cp.add_argument("--no-run", dest="run", action="store_false", help="only read stored results")
    cp.set_defaults(func=cmd_compare_protocols)

    sg = sub.add_parser("significance", help="paired tests of every method against the best baseline, from stored "
                                             "per-user results (t-test, Wilcoxon, Holm, bootstrap CI, effect size)",
                        parents=[_dataset(required=True), _out()])
    sg.add_argument("--protocol", default="sampled-uniform-n99", help="protocol tag: sampled-<sampler>-n<N> or full")
    sg.add_argument("--metric", default="ndcg@10,hr@10,mrr", help="metric(s), comma-separated")
    sg.add_argument("--reference", default=None, help="compare every method with this one instead of the best baseline")
    sg.add_argument("--all-pairs", action="store_true", help="compare every pair of methods")
    sg.add_argument("--methods", default=None,
                    help="test only these methods (comma-separated; with --reference, e.g. the ablations against the "
                         "full method), so Holm corrects over that family alone; written to its own file")
    sg.add_argument("--test", default="wilcoxon", help="test whose p-values are Holm-corrected: wilcoxon or ttest")
    sg.add_argument("--alpha", type=float, default=0.05)
    sg.set_defaults(func=cmd_significance)

    dv = sub.add_parser("diversity", help="RQ2: encoder embeddings of the K+1 attribute variants before and after "
                                          "GANPrompt's stage 1 (t-SNE PNG, silhouette, cosine and JS distances)",
                        parents=[_dataset(required=True), _out(), _data_root()])
    dv.add_argument("--method", default="ganprompt", help="ganprompt or one of its ablations with attributes")
    dv.add_argument("--profile", default="quick")
    dv.add_argument("--seed", type=int, default=0)
    dv.add_argument("--samples", type=int, default=60, help="evaluation samples (each with K+1 variants)")
    dv.add_argument("--set", action="append", metavar="METHOD.PARAM=VALUE")
    dv.set_defaults(func=cmd_diversity)

    hp = sub.add_parser("history-probe", help="does a fitted method rank through the user's history? Its saved "
                                              "fit scores a cell's users with their own history, with another "
                                              "user's, and as another user entirely (GAUC/NDCG@10 of each, the "
                                              "score split into candidates / user id / history, paired tests; with "
                                              "each declared input ablation off, e.g. CoLLM's collaborative slots)",
                        parents=[_dataset(required=True), _out(), _data_root()])
    hp.add_argument("--method", required=True, help="a method that reads histories (LLM, text or sequential)")
    hp.add_argument("--seed", type=int, default=0, help="the cell's seed (its fit and candidates)")
    hp.add_argument("--protocol", default="sampled-uniform-n99-u300", help="a sampled protocol tag: whose users "
                                                                           "and candidates are scored")
    hp.add_argument("--users", type=int, default=100, help="probed users, drawn from the protocol's users")
    hp.add_argument("--profile", default="quick")
    hp.add_argument("--set", action="append", metavar="METHOD.PARAM=VALUE")
    hp.add_argument("--swap-seed", type=int, default=0, help="seed of the user draw and of who reads whose history")
    hp.set_defaults(func=cmd_history_probe)

    rb = sub.add_parser("robustness", help="RQ1: score prompt-based methods under held-out templates and "
                                           "perturbations; mean/std/worst, PDR, PNG, paired tests",
                        parents=[_dataset(default="ml-100k"), *_grid()])
    # 300 users x 20 candidates: at 5 candidates chance NDCG@10 is .59 and HR@10 is 1, so no drop could show
    rb.set_defaults(methods="ganprompt,tallrec,collm", negatives=19, users=300)
    rb.add_argument("--sampler", default="uniform", help="negative sampler")
    rb.add_argument("--metric", default="ndcg@10")
    rb.add_argument("--seen", default="seen-0", help="the template the methods were trained on")
    rb.add_argument("--variants", default="all", help="all, templates or perturbations")
    rb.add_argument("--seed-perturb", type=int, default=0, help="seed of the random perturbations")
    rb.add_argument("--pair", default=None, help="two methods to test per variant, e.g. ganprompt,tallrec")
    rb.add_argument("--templates", action="append", metavar="FILE", default=None,
                    help="your own held-out templates (templates.yaml's format, tag: unseen) join the bank "
                         "(repeatable)")
    rb.add_argument("--no-run", dest="run", action="store_false", help="only report stored results")
    rb.set_defaults(func=cmd_robustness)

    au = sub.add_parser("audit", help="check the published results: invariants, one candidate file and user set per "
                                      "(dataset, protocol, seed), clean provenance taken at the start, params vs "
                                      "the current profile, compact per-user files, reports equal to what their "
                                      "cells give; exit 1 on failure",
                        parents=[_out("results", "results root to audit")])
    au.add_argument("--cells-only", dest="reports", action="store_false",
                    help="skip rebuilding the leaderboards, significance reports, paper tables and curves reports "
                         "(minutes)")
    au.set_defaults(func=cmd_audit)

    rr = sub.add_parser("reports", help="rebuild every leaderboard, significance report, paper table and curves "
                                        "report under the results root from its cells (options read back from each "
                                        "report) and rewrite those that changed, e.g. after new seeds land",
                        parents=[_dataset(what="only this dataset's folder"), _out()])
    rr.set_defaults(func=cmd_reports)

    dv = sub.add_parser("derive", help="write the cells of a user-subsample protocol (e.g. sampled-uniform-n99-u300) "
                                       "from finished all-users cells: the same candidates' rows, evaluated again, "
                                       "no training or scoring (a baseline joins the LLM methods' subsample)",
                        parents=[_dataset(required=True), _out()])
    dv.add_argument("--to", required=True, help="the subsample protocol's tag: sampled-<sampler>-n<N>-u<users>")
    dv.add_argument("--methods", default=None, help="only these methods (comma-separated; default: every one)")
    dv.add_argument("--force", action="store_true", help="write cells that are already finished again")
    dv.set_defaults(func=cmd_derive)

    cu = sub.add_parser("curves", help="learning curves from stored results: every validation curve the cells' fits "
                                       "recorded, per method and stage (did it rise, was it still rising when the "
                                       "budget ended), as Markdown / CSV and a PNG",
                        parents=[_dataset(required=True), _out()])
    cu.add_argument("--protocol", default="sampled-uniform-n99", help="protocol tag whose cells are read")
    cu.set_defaults(func=cmd_curves)

    lb = sub.add_parser("leaderboard", help="render the paper-style table from stored results",
                        parents=[_dataset(required=True), _out()])
    lb.add_argument("--protocol", default="sampled-uniform-n99", help="protocol tag: sampled-<sampler>-n<N> or full")
    lb.add_argument("--target", default=None, help="method whose Improvement (%%) over the best baseline is shown")
    lb.set_defaults(func=cmd_leaderboard)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from bench.plugins import include
        for path in args.include or []:
            include(path)
        return args.func(args)
    except BenchError as exc:
        if args.debug or os.environ.get("LLMREC_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; run the same command again to resume", file=sys.stderr)
        return 130
