"""Learning curves from stored results: every validation curve a fit recorded (RecBole's validation after each
epoch, the LLM loops' validation every N steps, stage by stage), summarised per method and stage (where the curve
started, peaked and ended, over seeds) and drawn in one PNG (a panel per method and stage, a line per seed).
It answers at a glance what a leaderboard cannot: did the method learn within its budget (best above first), and
was it still improving when its budget ended (best at the last point, so a larger budget may score higher)?
Read from result.json's `training`, so it covers every published cell; the fits are not re-run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError
from bench.io import write_png, write_text
from bench.report.labels import KIND_ORDER
from bench.results import cells_of, method_labels

WRAPPERS = ("curve", "history", "valid")  # keys that hold a curve without naming a stage
RISE = 1e-9  # a best this close to the first value is no rise (float noise of a restored state)


@dataclass
class Curve:
    """One validation curve of one fit: the stage it belongs to ("" for a one-stage fit), the metric the loop kept
    its best state by, what the x axis counts, and the points."""
    stage: str
    metric: str
    x: str
    xs: list[float]
    ys: list[float]

    def summary(self) -> dict:
        ys = np.asarray(self.ys, dtype=np.float64)
        best = int(np.argmax(ys))
        return {"stage": self.stage or "-", "metric": self.metric, "x": self.x, "points": len(ys),
                "first": ys[0], "best": ys[best], "best_at": self.xs[best], "last": ys[-1], "gain": ys[best] - ys[0],
                "rose": bool(ys[best] > ys[0] + RISE),
                "ends_at_best": bool(len(ys) > 1 and ys[-1] >= ys[best])}


def _metric(keys: list[str], ancestors: list[dict]) -> str | None:
    """The value key the loop selected its best state by: RecBole's `valid` is named by `valid_metric`; among an
    LLM loop's valid_* keys, the one its stage records as best_valid_*."""
    for node in reversed(ancestors):
        if "valid" in keys and isinstance(node.get("valid_metric"), str):
            return "valid"
        for k in keys:
            if f"best_{k}" in node:
                return k
    if "valid_gauc" in keys:
        return "valid_gauc"
    return keys[0] if keys else None


def _metric_name(key: str, ancestors: list[dict]) -> str:
    if key == "valid":
        named = [n["valid_metric"] for n in ancestors if isinstance(n.get("valid_metric"), str)]
        return named[-1] if named else "valid"
    return key.removeprefix("valid_")


def curves_of(training: dict | None) -> list[Curve]:
    """Every validation curve in a result's recorded training info: a list of points that each carry an `epoch`
    or `step` and a validation value (`valid` or `valid_<metric>`)."""
    found: list[Curve] = []

    def walk(node, path: tuple[str, ...], ancestors: list[dict]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,), ancestors + [node])
            return
        if not (isinstance(node, list) and node and all(isinstance(p, dict) for p in node)):
            return
        x = "epoch" if "epoch" in node[0] else "step" if "step" in node[0] else None
        keys = [k for k in node[0] if k == "valid" or k.startswith("valid_")]
        key = _metric(keys, ancestors) if x else None
        if key is None:
            return
        points = [(float(p[x]), float(p[key])) for p in node
                  if isinstance(p.get(key), (int, float)) and isinstance(p.get(x), (int, float))]
        if points:
            stage = ".".join(k for k in path if k not in WRAPPERS)
            found.append(Curve(stage, _metric_name(key, ancestors), x, [p[0] for p in points],
                               [p[1] for p in points]))

    walk(training or {}, (), [])
    return found


def stages_still_rising(training: dict | None) -> list[str]:
    """The stages ("" for a one-stage fit) whose validation curve rose and ended at its best: the budget ended while
    the curve still rose (the leaderboard's budget line says so)."""
    return [c.stage for c in curves_of(training) if (s := c.summary())["ends_at_best"] and s["rose"]]


@dataclass
class CurvesReport:
    dataset: str
    protocol: str
    rows: pd.DataFrame                      # one row per cell and curve (label, kind, seed, summary fields)
    curves: dict = field(default_factory=dict)   # (label, stage) -> [(seed, Curve)]
    without: list = field(default_factory=list)  # labels whose cells record no validation curve
    written: list = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """Per method and stage, over seeds: mean ± std of first / best / last and of best - first, where the best
        was reached, and how many seeds rose and how many ended at their best."""
        out = []
        for (label, stage), g in self.rows.groupby(["label", "stage"], sort=False):
            def ms(col, g=g):
                v = g[col].astype(float)
                return f"{v.mean():.4f}" + (f" ± {v.std():.4f}" if len(v) > 1 else "")
            out.append({"Method": label, "Stage": stage, "Metric": g["metric"].iloc[0], "Points": _points(g),
                        "First": ms("first"), "Best": ms("best"), "Last": ms("last"),
                        "Best - first": ms("gain"),
                        "Best at": ", ".join(f"{g['x'].iloc[0]} {b:g}" if i == 0 else f"{b:g}"
                                             for i, b in enumerate(g["best_at"])),
                        "Rose": f"{int(g['rose'].sum())}/{len(g)}",
                        "Ends at best": f"{int(g['ends_at_best'].sum())}/{len(g)}"})
        return pd.DataFrame(out)

    def to_markdown(self) -> str:
        body = tabulate(self.table(), headers="keys", tablefmt="github", showindex=False)
        return (f"# Learning curves: `{self.dataset}`, cells of `{self.protocol}`\n\n{body}\n\n"
                "Every validation curve the cells' fits recorded (`training` in result.json), one row per method "
                "and training stage, mean ± std over seeds. Each curve is the method's own validation: the "
                "metric its loop kept the best state by, on its own validation users and candidates (x = epoch: "
                "after each epoch, so the first point has one epoch of training; x = step: every N steps on a "
                "fixed validation sample, from step 0, before any update), so values are comparable along a "
                "curve and across seeds, not with the test metrics of the leaderboard. First: the first point; "
                "Best: the highest, the state the loop keeps; Best at: its epoch or step per seed. Rose: seeds "
                "whose best is above their first point (at step 0 a curve that never rose is the untrained "
                "state). Ends at best: seeds whose last point is their best, so the budget ended while the curve "
                "still rose and a larger budget may score higher."
                + (f" No validation curve recorded (nothing trained, or no validation during training): "
                   f"{', '.join(f'`{m}`' for m in self.without)}." if self.without else "")
                + f" Drawn in `curves-{self.protocol}.png` (curves of one point are not drawn). `bench.py curves "
                  f"--dataset {self.dataset} --protocol {self.protocol}` rewrites these files.\n")

    def to_csv(self) -> str:
        cols = ["label", "kind", "seed", "stage", "metric", "x", "points", "first", "best", "best_at", "last",
                "gain", "rose", "ends_at_best"]
        return self.rows[cols].rename(columns={"label": "method"}).to_csv(index=False)

    def figure(self):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        panels = [(key, runs) for key, runs in self.curves.items() if max(len(c.xs) for _, c in runs) > 1]
        cols = min(4, max(1, len(panels)))
        n_rows = -(-len(panels) // cols)
        fig, axes = plt.subplots(n_rows, cols, figsize=(4 * cols, 2.8 * n_rows), squeeze=False)
        for ax, ((label, stage), runs) in zip(axes.flat, panels):
            for seed, c in runs:
                ax.plot(c.xs, c.ys, marker="." if len(c.xs) < 30 else None, label=f"seed {seed}")
            c = runs[0][1]
            ax.set_title(f"{label}" + (f" · {stage}" if stage != "-" else ""), fontsize=9)
            ax.set_xlabel(c.x, fontsize=8)
            ax.set_ylabel(f"valid {c.metric}", fontsize=8)
            if c.metric in ("gauc", "auc"):
                ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        fig.suptitle(f"Validation curves: {self.dataset}, cells of {self.protocol} (dotted: GAUC chance .5)",
                     fontsize=10)
        fig.tight_layout()
        return fig

    def write_figure(self, folder: Path) -> Path:
        path = Path(folder) / f"curves-{self.protocol}.png"
        write_png(path, self.figure())
        return path

    def files(self) -> dict[str, str]:
        stem = f"curves-{self.protocol}"
        return {f"{stem}.md": self.to_markdown(), f"{stem}.csv": self.to_csv()}

    def write(self, root: Path) -> list[Path]:
        folder = Path(root) / self.dataset
        paths = []
        for name, text in self.files().items():
            write_text(folder / name, text)
            paths.append(folder / name)
        return paths + [self.write_figure(folder)]


def _points(g: pd.DataFrame) -> str:
    lo, hi = int(g["points"].min()), int(g["points"].max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


def build(root: Path, dataset: str, protocol: str) -> CurvesReport:
    cells = [res for _, res in cells_of(root, dataset, protocol)]
    labels = method_labels((res["method"]["name"], res["method"]["params_hash"]) for res in cells)
    kinds = {lab: res["method"].get("kind", "baseline") for lab, res in zip(labels, cells)}
    order = sorted(set(labels), key=lambda lab: (KIND_ORDER.get(kinds[lab], 9), lab))
    rows, curves, has_curve = [], {}, set()
    for lab, res in sorted(zip(labels, cells), key=lambda t: (order.index(t[0]), t[1]["seed"])):
        for c in curves_of(res.get("training")):
            s = c.summary()
            rows.append({"label": lab, "kind": kinds[lab], "seed": int(res["seed"]), **s})
            curves.setdefault((lab, s["stage"]), []).append((int(res["seed"]), c))
            has_curve.add(lab)
    if not rows:
        raise BenchError(f"no cell of {dataset}/{protocol} under {root} records a validation curve")
    return CurvesReport(dataset, protocol, pd.DataFrame(rows), curves, [lab for lab in order if lab not in has_curve])
