"""What S3Rec's vectorised pre-training and width-grouped rows save (methods/s3rec.py). The same training batches
from the loader, each put through forward + backward by RecBole's S3Rec and by the harness's, in both stages:
pre-training (each batch built into a pre-training batch first: RecBole's Python loops against tensor operations)
and fine-tuning (CE loss). Prints the times per batch, their ratio, the minutes per epoch, the share of history
slots that hold an item, and the largest loss and gradient differences on the same batches without dropout.
Run: python benchmarks/s3rec_speed.py [--dataset beauty-5core] [--batches 20] [--threads 1]"""
import argparse
import itertools
import tempfile
from pathlib import Path

import torch

from bench.data.prepare import load_dataset
from bench.method import get_method
from fitdata import fit_data
from loss_gap import differences, timed


def line(stage, n_batches, theirs, ours, diffs):
    t_theirs, t_ours = sum(theirs), sum(ours)
    return (f"  {stage}: RecBole {t_theirs:.3f} s/batch (batch {theirs[0]:.3f} + step {theirs[1]:.3f}), harness "
            f"{t_ours:.3f} s/batch (batch {ours[0]:.3f} + step {ours[1]:.3f}), ratio {t_theirs / t_ours:.2f}x; epoch of "
            f"{n_batches} batches {n_batches * t_theirs / 60:.1f} -> {n_batches * t_ours / 60:.1f} min; largest relative "
            f"loss difference {diffs[0]:.1e}, largest gradient difference {diffs[1]:.1e} (largest entry {diffs[2]:.1e})")


def main():
    from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="beauty-5core")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.dataset)
    data = fit_data(ds)
    m = get_method("s3rec").from_profile("quick")
    lines = []
    with m._recbole_view(data), tempfile.TemporaryDirectory() as tmp:
        attr = next(iter(data.item_attrs))
        _, loader = m._build(data, train_stage="pretrain", item_attribute=attr)
        model = m.model_
        batches = [(b[model.ITEM_SEQ], b[model.ITEM_SEQ_LEN]) for b in itertools.islice(iter(loader), a.batches)]
        share = float(sum(n.sum() for _, n in batches) / sum(s.numel() for s, _ in batches))
        theirs = timed(model, lambda b: RecBoleS3Rec.reconstruct_pretrain_data(model, *b),
                       lambda *x: RecBoleS3Rec.pretrain(model, *x), batches)
        ours = timed(model, lambda b: model.reconstruct_pretrain_data(*b), model.pretrain, batches)
        diffs = differences(model, (lambda *x: RecBoleS3Rec.pretrain(model, *x), model.pretrain),
                            lambda b: model.reconstruct_pretrain_data(*b), batches)
        lines.append(line("pre-training", len(loader), theirs, ours, diffs))

        torch.save({"state_dict": model.state_dict()}, Path(tmp) / "pre.pth")
        _, loader = m._build(data, train_stage="finetune", item_attribute=attr, pre_model_path=str(Path(tmp) / "pre.pth"))
        model = m.model_
        batches = list(itertools.islice(iter(loader), a.batches))
        theirs = timed(model, lambda b: (b,), lambda b: RecBoleS3Rec.calculate_loss(model, b), batches)
        ours = timed(model, lambda b: (b,), model.calculate_loss, batches)
        diffs = differences(model, (lambda b: RecBoleS3Rec.calculate_loss(model, b), model.calculate_loss),
                            lambda b: (b,), batches)
        lines.append(line("fine-tuning", len(loader), theirs, ours, diffs))
    print(f"s3rec on {a.dataset}, {a.batches} batches of {m.params.train_batch_size}, {a.threads} thread(s), "
          f"{model.n_features} attributes, {share:.1%} of the history slots hold an item:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
