"""The paper's RQ2 (`bench.py diversity`): does stage 1 spread the K + 1 attribute variants of a prompt apart?
It lives beside GANPrompt because it drives GANPrompt's own stages (fit_diversity_encoder, variant_embeddings).

Trains stages 0 and 1 of GANPrompt (the given profile), embeds the same evaluation samples' K + 1 variants with the
encoder before (pre-trained) and after stage 1, and reports per encoder: silhouette score by class (cosine), mean
pairwise cosine distance and mean JS divergence among each sample's variants, and a side-by-side 2-D t-SNE PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tabulate import tabulate

from bench.errors import MethodError
from bench.io import write_json, write_png, write_text
from methods.ganprompt.losses import js_divergence
from methods.ganprompt.method import GANPrompt


def diversity_stats(z: np.ndarray, temperature: float = 1.0) -> dict:
    """z: [samples, K+1, H]."""
    from sklearn.metrics import silhouette_score
    n, k1, _ = z.shape
    i, j = np.triu_indices(k1, 1)
    a, b = torch.tensor(z[:, i]), torch.tensor(z[:, j])
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    labels = np.tile(np.arange(k1), n)
    return {"silhouette_by_class": float(silhouette_score(z.reshape(n * k1, -1), labels, metric="cosine")),
            "mean_pairwise_cosine_distance": float((1 - cos).mean()),
            "mean_js_divergence": float(js_divergence(a, b, temperature).mean())}


def tsne_png(before: np.ndarray, after: np.ndarray, classes: list[str], path: Path, seed: int = 0) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, z, title in ((axes[0], before, "before stage 1 (pre-trained encoder)"),
                         (axes[1], after, "after stage 1 (diversity encoder)")):
        n, k1, h = z.shape
        flat = z.reshape(n * k1, h)
        xy = TSNE(n_components=2, perplexity=min(30.0, (len(flat) - 1) / 3), init="pca", random_state=seed,
                  metric="cosine").fit_transform(flat)
        labels = np.tile(np.arange(k1), n)
        for c in range(k1):
            ax.scatter(*xy[labels == c].T, s=10, label=classes[c], alpha=0.75)
        ax.set_title(title)
        ax.set_xticks([]), ax.set_yticks([])
    axes[1].legend(loc="best", fontsize=8, markerscale=2)
    fig.suptitle("GANPrompt prompt variants: real prompt (x0) and one class per attribute")
    fig.tight_layout()
    write_png(path, fig)


def check_method(method) -> None:
    """The analysis needs GANPrompt's diversity encoder and attribute variants: say so before any work."""
    if not isinstance(method, GANPrompt) or method.params.backbone == "plain" or not method.params.use_attributes:
        raise MethodError(f"method {method.name}: the diversity analysis needs GANPrompt (or an ablation) with a "
                          "diversity encoder and attributes (backbone encoder+causal or t5, use_attributes on)")


def d_accuracy_line(stage1: dict) -> str:
    """Stage 1's discriminator accuracy per step (measured on each new batch before D learns from it) against chance:
    the evidence that the variants the diversity term spreads are also told apart."""
    acc = [e["d_acc"] for e in stage1.get("log", []) if "d_acc" in e]
    if not acc:
        return "No discriminator in this configuration (no D accuracy curve)."
    return (f"Discriminator accuracy per stage-1 step (chance 1/(K+1) = {stage1.get('d_chance', float('nan')):.3f}): "
            + ", ".join(f"{a:.3f}" for a in acc) + ".")


def run(data, method: GANPrompt, out_dir: Path, n_eval: int = 60, git: dict | None = None) -> dict:
    """`method`: an unfitted GANPrompt whose stages 0-1 are trained here. `git`: the provenance taken when the run
    started (bench.results.git_state), recorded with the report."""
    import numpy.random as npr
    from bench.lm.samples import make_groups
    from bench.results import environment
    check_method(method)
    method.fit_diversity_encoder(data)
    if not method.attributes_:
        raise MethodError(f"method {method.name}: stage 0 produced no attributes; the diversity analysis needs them")
    k1 = 1 + len(method.attributes_)
    rng = npr.default_rng(data.seed + 1)
    evals = make_groups(data, max(1, n_eval), method.params.history_len, 0, rng)
    after = method.variant_embeddings(evals)
    before = method.variant_embeddings(evals, backbone=method.pretrained_backbone())  # untouched by stage 1
    classes = ["x0 (real)"] + [f"a{k}: {a}" for k, a in enumerate(method.attributes_, 1)]
    stats = {"before": diversity_stats(before, method.params.js_temperature),
             "after": diversity_stats(after, method.params.js_temperature)}
    out_dir = Path(out_dir)
    tsne_png(before, after, classes, out_dir / "diversity-tsne.png", seed=data.seed)
    stage1 = method.fit_info_.get("stage1", {})
    table = pd.DataFrame(stats).T
    md = tabulate(table.reset_index().values.tolist(), headers=["encoder", *table.columns], tablefmt="github",
                  floatfmt=".4f")
    md += (f"\n\nDataset `{data.name}`, {len(evals)} samples x {k1} variants (attributes: "
           f"{', '.join(method.attributes_)}). Silhouette by class (cosine); mean pairwise cosine distance and JS "
           f"divergence (softmax temperature {method.params.js_temperature}) among each sample's variants. "
           + d_accuracy_line(stage1) + "\n")
    write_text(out_dir / "diversity.md", md)
    write_text(out_dir / "diversity.csv", table.to_csv(index_label="encoder"))
    write_json(out_dir / "diversity.json", {"dataset": data.name, "fingerprint": data.fingerprint, "seed": data.seed,
                                            "params": method.get_params(), "attributes": method.attributes_,
                                            "n_samples": len(evals), "stats": stats,
                                            "stage1": stage1,
                                            "alignment": method.fit_info_.get("alignment"),
                                            "timings_s": method.fit_info_["timings_s"],
                                            "environment": environment(str(method.device_), git=git)})
    return {"stats": stats, "markdown": md, "png": out_dir / "diversity-tsne.png"}
