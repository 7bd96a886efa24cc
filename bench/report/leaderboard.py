"""The paper-style table from stored results only (never retrains): one row per method, metrics as columns,
best value bold, best baseline underlined, an Improvement (%) row of a chosen method over the best baseline,
mean ± std over seeds."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError, MethodError
from bench.evaluate import METRIC_KEYS
from bench.io import write_text
from bench.protocol import Protocol
from bench.report.labels import KIND_ORDER, header
from bench.report.significance import compare_metrics
from bench.report.curves import stages_still_rising
from bench.results import (cells_of, fit_time_is_partial, method_labels, protocol_folders,
                           stages_kept_at_start)

BUDGET_MARK = " (budget-stopped)"
KEPT_MARK = " (stage kept at step 0)"


@dataclass
class Leaderboard:
    dataset: str
    protocol: str
    mean: pd.DataFrame           # index: method label; columns: metrics
    std: pd.DataFrame
    n_seeds: pd.Series
    kind: pd.Series
    target: str | None
    best_baseline: dict[str, str]
    marks: dict[str, dict[str, str]] = field(default_factory=dict)  # metric -> label -> "†"
    significance_note: str = ""
    budget_stopped: set = field(default_factory=set)  # labels with a seed ended by the wall-clock safety stop
    kept_at_start: dict = field(default_factory=dict)  # label -> {stage: seeds} whose best state was the stage's start
    budgets: dict = field(default_factory=dict)       # label -> what bounded its training (profile, counts, fit time)
    text_source: dict = field(default_factory=dict)   # item text the text-reading rows read: field -> items
    elsewhere: dict = field(default_factory=dict)     # method -> other protocols of this dataset it has results under
    written: list = field(default_factory=list)       # the files bench.api.leaderboard wrote

    @property
    def table(self) -> pd.DataFrame:
        """One row per method label: kind, seeds, then the mean of each metric over seeds."""
        return pd.concat([self.kind.rename("kind"), self.n_seeds.rename("seeds"), self.mean[self.metrics()]], axis=1)

    def metrics(self) -> list[str]:
        return [m for m in METRIC_KEYS if self.mean[m].notna().any()]

    def improvement(self) -> dict[str, float] | None:
        if self.target is None:
            return None
        out = {}
        for m in self.metrics():
            base = self.mean.at[self.best_baseline[m], m] if self.best_baseline.get(m) else np.nan
            out[m] = 100.0 * (self.mean.at[self.target, m] - base) / base if base else np.nan
        return out


def collect(root: Path, dataset: str, protocol: str) -> pd.DataFrame:
    rows = []
    for _, res in cells_of(root, dataset, protocol):
        m = res["method"]
        rows.append({"method": m["name"], "params_hash": m["params_hash"], "kind": m.get("kind", "baseline"),
                     "seed": res["seed"], "budget_stopped": bool((res.get("training") or {}).get("budget_stopped")),
                     "kept_at_start": tuple(stages_kept_at_start(res.get("training"))),
                     "still_rising": tuple(stages_still_rising(res.get("training"))),
                     "budget": budget_text(m.get("profile"), m.get("params") or {}, m.get("overrides"),
                                           (res.get("environment") or {}).get("device"),
                                           _ignored(m["name"], m.get("params") or {})) + _derived_text(res),
                     "fit_s": (res.get("timings") or {}).get("fit_s"), "fit_partial": fit_time_is_partial(res),
                     "text_source": (res.get("dataset") or {}).get("text_source"),
                     **{k: res["metrics"].get(k) for k in METRIC_KEYS}})
    return pd.DataFrame(rows)


def build(root: Path, dataset: str, protocol: str = "sampled-uniform-n99", target: str | None = None,
          significance: bool = True) -> Leaderboard:
    df = collect(root, dataset, protocol)
    df["label"] = method_labels(zip(df["method"], df["params_hash"]))
    values = df[["label", *METRIC_KEYS]].astype({k: float for k in METRIC_KEYS}).groupby("label")
    mean, std = values.mean(), values.std()
    kind = df.groupby("label")["kind"].first()
    order = sorted(mean.index, key=lambda lab: (KIND_ORDER.get(kind[lab], 9), lab))
    mean, std, kind = mean.loc[order], std.loc[order], kind.loc[order]
    n_seeds = df.groupby("label")["seed"].nunique().loc[order]
    if target is not None and target not in mean.index:
        raise BenchError(f"target method {target!r} has no result for {dataset}/{protocol}; has: {', '.join(mean.index)}")
    best_baseline = {}
    for m in METRIC_KEYS:
        col = mean[m].drop(index=[target] if target else []).dropna()
        best_baseline[m] = col.idxmax() if len(col) else None
    budget = df.groupby("label")["budget"].first()
    fit_s = pd.to_numeric(df["fit_s"], errors="coerce").groupby(df["label"]).mean()
    kept, rising = _seeds_by_stage(df, "kept_at_start"), _seeds_by_stage(df, "still_rising")
    partial = df.groupby("label")["fit_partial"].any()
    budgets = {lab: budget[lab] + (f"; fit {'≥ ' if partial[lab] else ''}{fit_s[lab]:.0f} s"
                                   + (" (a seed's fit was resumed and timed over its last run only)"
                                      if partial[lab] else "") if fit_s[lab] >= 1 else "")
               + "".join(f"; {stage} kept at step 0 in seed(s) {', '.join(map(str, sorted(seeds)))} of "
                         f"{n_seeds[lab]}" for stage, seeds in sorted(kept.get(lab, {}).items()))
               + "".join(f"; {stage + ' ' if stage else ''}validation still rising at the end in seed(s) "
                         f"{', '.join(map(str, sorted(seeds)))} of {n_seeds[lab]}"
                         for stage, seeds in sorted(rising.get(lab, {}).items()))
               for lab in order}
    readers = df[df["kind"].isin((*TEXT_READERS, "text")) & df["text_source"].notna()]
    lb = Leaderboard(dataset, protocol, mean, std, n_seeds, kind, target, best_baseline,
                     budget_stopped=set(df.loc[df["budget_stopped"], "label"]), kept_at_start=kept, budgets=budgets,
                     text_source=dict(readers["text_source"].iloc[0]) if len(readers) else {},
                     elsewhere=run_elsewhere(root, dataset, protocol, set(df["method"])))
    if significance and len(mean) > 1:
        _add_marks(lb, root)
    return lb


def _seeds_by_stage(df: pd.DataFrame, column: str) -> dict[str, dict[str, list[int]]]:
    """label -> {stage: seeds} from a column holding each cell's stage names (kept at step 0, still rising)."""
    out: dict[str, dict[str, list[int]]] = {}
    for lab, seed, stages in zip(df["label"], df["seed"], df[column]):
        for stage in stages:
            out.setdefault(lab, {}).setdefault(stage, []).append(int(seed))
    return out


def _add_marks(lb: Leaderboard, root: Path) -> None:
    """† where a method beats the best other baseline significantly (Wilcoxon on per-user values, Holm)."""
    try:
        tested = [m for m in lb.metrics() if m != "auc"]  # pooled AUC has no per-user values
        for m, report in compare_metrics(root, lb.dataset, lb.protocol, tested, n_boot=200).items():
            lb.marks[m] = report.marks()
        lb.significance_note = (" †: better than the best other baseline, Wilcoxon signed-rank on per-user values, "
                                "Holm-corrected, alpha 0.05 (`bench.py significance` for the full report).")
    except BenchError as exc:
        lb.marks.clear()
        lb.significance_note = f" No significance marks: {exc}."


def _cell(lb: Leaderboard, label: str, m: str, style: str) -> str:
    mean, std = lb.mean.at[label, m], lb.std.at[label, m]
    if pd.isna(mean):
        return "-"
    text = f"{mean:.4f}" + (f" ± {std:.4f}" if lb.n_seeds[label] > 1 and not pd.isna(std) else "")
    text += lb.marks.get(m, {}).get(label, "")
    best = lb.mean[m].max()
    if np.isclose(mean, best, rtol=0, atol=1e-12):
        text = f"**{text}**" if style == "md" else f"\\textbf{{{text}}}"
    elif lb.best_baseline.get(m) == label:
        text = f"_{text}_" if style == "md" else f"\\underline{{{text}}}"
    return text


def _row_label(lb: Leaderboard, label: str) -> str:
    return (label + (BUDGET_MARK if label in lb.budget_stopped else "")
            + (KEPT_MARK if label in lb.kept_at_start else ""))


def render(lb: Leaderboard, style: str) -> str:
    metrics = lb.metrics()
    rows = [[_row_label(lb, label), *[_cell(lb, label, m, style) for m in metrics], int(lb.n_seeds[label])]
            for label in lb.mean.index]
    imp = lb.improvement()
    if imp is not None:
        rows.append(["Improvement (%)", *[f"{imp[m]:+.2f}" if not pd.isna(imp[m]) else "-" for m in metrics], ""])
    heads = ["Method", *[header(m) for m in metrics], "seeds"]
    if style == "md":
        table = tabulate(rows, headers=heads, tablefmt="github")
        legend = (f"\n\nDataset `{lb.dataset}`, protocol `{lb.protocol}`. Bold: best value; italic: best baseline"
                  + (f" (methods other than `{lb.target}`); Improvement: `{lb.target}` over the best baseline." if lb.target
                     else "; no target method chosen, so no Improvement row (use --target).")
                  + " Mean ± std over seeds where there are several." + lb.significance_note
                  + chance_note(lb.protocol)
                  + _text_floor_note(lb) + _text_source_note(lb) + _elsewhere_note(lb)
                  + (f" {BUDGET_MARK}: budget-stopped (a seed was ended by the wall-clock safety stop, so the result "
                     "depends on machine load and is not reproducible)." if lb.budget_stopped else "")
                  + (f" {KEPT_MARK}: in at least one seed a training stage's best validated state was its starting "
                     "state, which the loop restores, so the scores do not include what that stage trains (e.g. "
                     "CoLLM's stage 2 at step 0: its mapper outputs zero, so no collaborative input reaches the LM); "
                     "the budget line names the stage and seeds." if lb.kept_at_start else "") + "\n"
                  + _budget_note(lb))
        return table + legend
    return tabulate(rows, headers=heads, tablefmt="latex_raw") + "\n"


TEXT_READERS = ("llm", "proposed", "control")
# the parameters that bound how much a method trains, in the order a reader looks for them
BUDGET_KEYS = ("epochs", "pretrain_epochs", "cf_epochs", "stage1_epochs", "stage2_epochs", "train_groups",
               "negatives", "align_steps", "train_samples", "max_minutes")


def _ignored(method: str, params: dict) -> set[str]:
    """The recorded params the method's configuration never reads (Method.ignored_params); none for a method this
    process has not registered (a plugin's results read without its --include)."""
    from bench.method import get_method
    try:
        return get_method(method).ignored_params(params)
    except MethodError:
        return set()


def budget_text(profile: str | None, params: dict, overrides: dict | None = None, device: str | None = None,
                ignored: set[str] = frozenset()) -> str:
    """What bounded a cell's training, from its recorded params: the profile and the budget parameters it has (less
    those its configuration never reads), the other parameters set away from the profile (`--set`), and the device
    when it was not the CPU."""
    parts = [f"{k} {params[k]}" for k in BUDGET_KEYS if params.get(k) is not None and k not in ignored]
    text = (f"profile {profile}" if profile else "no profile") + (": " + ", ".join(parts) if parts else "")
    changed = [f"{k} {v}" for k, v in sorted((overrides or {}).items()) if k not in BUDGET_KEYS]
    if changed:
        text += "; also set: " + ", ".join(changed)
    if device and device != "cpu":
        text += f"; trained on {device}"
    return text


def _derived_text(res: dict) -> str:
    """A row derived from all-users cells (bench.derive) says so beside its budget."""
    source = (res.get("derived") or {}).get("from")
    return (f"; these users' rows of its {Path(source).parts[1]} cells (bench.py derive)" if source else "")


def _budget_note(lb: Leaderboard) -> str:
    """The caption's training budgets (issue: a table says what each row was allowed to train), one line each;
    max_minutes is the wall-clock safety stop, fit the mean fit time over seeds on the machine that ran it."""
    if not lb.budgets:
        return ""
    return ("\nTraining budgets (recorded params; max_minutes = wall-clock safety stop; fit = mean fit time over "
            "seeds; \"still rising\": the validation curve rose and its best was its last point, so a larger "
            "budget may score higher, see `bench.py curves`):\n\n"
            + "".join(f"- `{lab}`: {text}\n" for lab, text in lb.budgets.items()))


def _text_floor_note(lb: Leaderboard) -> str:
    """Methods that read item text are judged against the zero-shot text floor; say so when it is missing."""
    if not any(k in TEXT_READERS for k in lb.kind) or any(k == "text" for k in lb.kind):
        return ""
    return (" The zero-shot text floor `textsim` is missing from this table: run it beside the LLM methods (they "
            "must clear it to have learned anything the item text alone does not give).")


def _text_source_note(lb: Leaderboard) -> str:
    """Which item text the text-reading rows read (e.g. Sports has no titles, only title-derived keywords)."""
    if not lb.text_source:
        return ""
    parts = ", ".join(f"`{f}` for {n} items" for f, n in lb.text_source.items())
    return f" Item text read by the text methods: {parts} (the recipe says what the field holds)."


def run_elsewhere(root: Path, dataset: str, protocol: str, present: set[str]) -> dict[str, list[str]]:
    """Methods with results on this dataset under other protocols but none under this one (e.g. DIN, whose full
    ranking is a pointwise pass over every item and was run under the sampled protocols only), so that a reader of
    one table knows a row is missing rather than never run."""
    out: dict[str, list[str]] = {}
    for folder, _ in protocol_folders(root, dataset):
        if folder.name == protocol:
            continue
        for method_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if method_dir.name not in present and next(method_dir.glob("*/seed*/result.json"), None):
                out.setdefault(method_dir.name, []).append(folder.name)
    return out


def _elsewhere_note(lb: Leaderboard) -> str:
    if not lb.elsewhere:
        return ""
    parts = "; ".join(f"`{m}` ({', '.join(tags)})" for m, tags in sorted(lb.elsewhere.items()))
    return f" Not in this table, with results on `{lb.dataset}` under other protocols only: {parts}."


def chance_note(protocol: str) -> str:
    """One sentence: what random scores reach under a sampled protocol (tag); "" for full ranking."""
    proto = Protocol.from_tag(protocol)
    floor = proto.chance()
    if floor is None:
        return ""
    return (f" Chance level with {proto.n_negatives + 1} candidates: AUC 0.5, HR@10 {floor['hr@10']:.4f}, "
            f"NDCG@10 {floor['ndcg@10']:.4f}, MRR {floor['mrr']:.4f}.")


def to_csv(lb: Leaderboard) -> str:
    flat = lb.mean.join(lb.std, rsuffix="_std")
    flat["n_seeds"], flat["kind"] = lb.n_seeds, lb.kind
    flat["budget_stopped"] = [label in lb.budget_stopped for label in flat.index]
    flat["kept_at_step0"] = [";".join(f"{stage}:{'+'.join(map(str, sorted(seeds)))}"
                                      for stage, seeds in sorted(lb.kept_at_start.get(label, {}).items()))
                             for label in flat.index]
    return flat.to_csv(index_label="method")


def write(lb: Leaderboard, out_dir: Path) -> list[Path]:
    base = Path(out_dir) / lb.dataset
    paths = []
    for ext, text in (("md", render(lb, "md")), ("tex", render(lb, "tex")), ("csv", to_csv(lb))):
        path = base / f"leaderboard-{lb.protocol}.{ext}"
        write_text(path, text)
        paths.append(path)
    return paths
