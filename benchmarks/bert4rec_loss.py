"""What computing BERT4Rec's CE loss on the masked positions only saves (methods/bert4rec.py): the same training
batches, forward + backward, with RecBole's calculate_loss (every mask slot scored against all items) and with the
harness's; prints the share of mask slots that hold an item, both times per batch, the ratio, and the largest loss
and gradient differences on the same batches without dropout.
Run: python benchmarks/bert4rec_loss.py [--dataset beauty-5core] [--batches 30] [--threads 1]"""
import argparse
import itertools

import torch

from bench.data.prepare import load_dataset
from bench.method import get_method
from fitdata import fit_data
from loss_gap import differences, timed


def main():
    from recbole.model.sequential_recommender.bert4rec import BERT4Rec as RecBoleBERT4Rec
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="beauty-5core")
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.dataset)
    data = fit_data(ds)
    m = get_method("bert4rec").from_profile("quick")
    with m._recbole_view(data):
        _, loader = m._build(data)
        model = m.model_
        batches = list(itertools.islice(iter(loader), a.batches))
        share = float(torch.cat([(b[model.MASK_INDEX] > 0).flatten() for b in batches]).float().mean())
        theirs = lambda b: RecBoleBERT4Rec.calculate_loss(model, b)  # noqa: E731
        model.train()
        t_theirs, t_ours = (sum(timed(model, lambda b: (b,), fn, batches)) for fn in (theirs, model.calculate_loss))
        loss_diff, grad_diff, grad_max = differences(model, (theirs, model.calculate_loss), lambda b: (b,), batches)
    print(f"bert4rec on {a.dataset}, {len(batches)} batches of {m.params.train_batch_size}, {a.threads} thread(s): "
          f"{share:.1%} of the mask slots hold an item; RecBole's loss {t_theirs:.3f} s/batch, masked rows only "
          f"{t_ours:.3f} s/batch, ratio {t_theirs / t_ours:.2f}x; largest relative loss difference {loss_diff:.1e}, "
          f"largest gradient difference {grad_diff:.1e} (largest entry {grad_max:.1e})")


if __name__ == "__main__":
    main()
