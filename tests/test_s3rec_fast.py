"""methods/s3rec.py trains RecBole's S3Rec on pre-training batches drawn with tensor operations, each row encoded on
the columns its history fills and each loss summed over the slots that enter it: the batches have RecBole's structure
and frequencies, and on the same batch the losses of both stages and their gradients are RecBole's."""
import itertools
import random

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency

from bench.data.candidates import draw
from bench.data.view import FitData
from bench.method import get_method
from tests.same_loss import assert_same_loss_and_grads

SMALL = {"epochs": 1, "train_batch_size": 32, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
         "MAX_ITEM_LIST_LENGTH": 20}


@pytest.fixture(scope="module")
def pretrain_model(tiny_ds):
    """The pre-training model and a few of its training batches, plus the same batches cut to short histories (so
    that whole columns are padding, as on the Amazon sets)."""
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 9, "uniform", 0), seed=0)
    m = get_method("s3rec")(**SMALL)
    with m._recbole_view(data):
        _, loader = m._build(data, train_stage="pretrain", item_attribute=next(iter(data.item_attrs)))
        model = m.model_
        batches = [(b[model.ITEM_SEQ], b[model.ITEM_SEQ_LEN]) for b in itertools.islice(iter(loader), 3)]
    short = [(seq, lens.clamp(max=3 + i)) for i, (seq, lens) in enumerate(batches)]
    return model, batches + short


def recboles(model, seq, lens):
    from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec
    return RecBoleS3Rec.reconstruct_pretrain_data(model, seq, lens)


def check_batch(model, out, seq, lens):
    """Check one batch against RecBole's rules; return each row's (segment length, start) for rows of 2+ items."""
    features, masked, pos, neg, mseg, pseg, nseg = out
    width, mask = seq.size(1), model.mask_token
    pool = torch.cat([seq[r, : lens[r]] for r in range(len(seq))])
    drawn = []
    for r in range(len(seq)):
        n = int(lens[r])
        hist = seq[r, :n]
        assert (pos[r, width - n:] == hist).all() and (pos[r, : width - n] == 0).all()
        hidden = masked[r] == mask
        assert not hidden[: width - n].any() and (masked[r][~hidden] == pos[r][~hidden]).all()
        assert (neg[r][~hidden] == pos[r][~hidden]).all()
        negs = neg[r][hidden]
        assert ((negs >= 1) & (negs <= model.n_items - 1)).all() and not torch.isin(negs, hist).any()
        if n < 2:
            assert (mseg[r] == pos[r]).all() and (pseg[r] == pos[r]).all() and (nseg[r] == pos[r]).all()
            continue
        inside = (mseg[r] == mask).nonzero().flatten()
        length, start = len(inside), int(inside[0]) - (width - n)
        assert 1 <= length <= n // 2 and (inside == torch.arange(int(inside[0]), int(inside[0]) + length)).all()
        outside = torch.ones(width, dtype=torch.bool)
        outside[inside] = False
        assert (mseg[r][outside] == pos[r][outside]).all()
        assert (pseg[r][inside] == pos[r][inside]).all() and (nseg[r][inside] != 0).all()
        real_outside = outside.clone()
        real_outside[: width - n] = False
        for s in (pseg[r], nseg[r]):
            assert (s[real_outside] == mask).all() and (s[: width - n] == 0).all()
        window = nseg[r][inside]
        assert any((pool[i:i + length] == window).all() for i in range(len(pool) - length + 1))
        drawn.append((length, start))
    return drawn


def test_batches_have_recboles_structure_and_frequencies(pretrain_model):
    model, batches = pretrain_model
    random.seed(0)
    torch.manual_seed(0)
    ours, theirs = {"masked": [], "seg": [], "neg": []}, {"masked": [], "seg": [], "neg": []}
    for seq, lens in batches:
        for _ in range(20):
            for fn, acc in ((model.reconstruct_pretrain_data, ours), (lambda s, n: recboles(model, s, n), theirs)):
                out = fn(seq, lens)
                acc["seg"] += check_batch(model, out, seq, lens)
                acc["masked"].append(float((out[1] == model.mask_token).sum() / lens.sum()))
                acc["neg"] += out[3][out[1] == model.mask_token].tolist()
        a, b = model.reconstruct_pretrain_data(seq, lens), recboles(model, seq, lens)
        torch.testing.assert_close(a[0].float(), b[0].float(), rtol=0, atol=0)  # the attributes: no randomness
        assert a[0].sum() > 0
        torch.testing.assert_close(a[2], b[2], rtol=0, atol=0)                   # the positive items
    assert abs(np.mean(ours["masked"]) - model.mask_ratio) < 0.02
    assert abs(np.mean(theirs["masked"]) - model.mask_ratio) < 0.02
    # RecBole draws negatives uniformly from 1..n_items-1, which holds the mask token: so do we
    for negs in (ours["neg"], theirs["neg"]):
        assert negs.count(model.mask_token) > len(negs) / (model.n_items - 1) / 3
    # the same joint distribution of segment (length, start) as RecBole's loop, on the same histories
    keys = sorted(set(ours["seg"]) | set(theirs["seg"]))
    table = np.array([[ours["seg"].count(k) for k in keys], [theirs["seg"].count(k) for k in keys]])
    table = table[:, table.sum(0) >= 5]
    assert table.shape[1] > 10 and chi2_contingency(table).pvalue > 1e-3


def test_width_groups_cover_each_row_once_at_the_narrowest_width():
    from methods.s3rec import fast_s3rec
    lengths = torch.tensor([1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 49, 50])
    groups = fast_s3rec().width_groups(lengths, 50)
    width = {int(r): w for rows, w in groups for r in rows}
    assert sorted(width) == list(range(len(lengths))) and sum(len(rows) for rows, _ in groups) == len(lengths)
    assert [width[i] for i in range(len(lengths))] == [2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 50, 50, 50]


def test_pretrain_loss_and_gradients_equal_recboles(pretrain_model):
    from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec
    model, batches = pretrain_model
    assert isinstance(model, RecBoleS3Rec) and type(model) is not RecBoleS3Rec
    model.eval()   # no dropout: both losses see the same forward pass
    torch.manual_seed(1)
    narrow = 0
    try:
        for seq, lens in batches:
            inputs = model.reconstruct_pretrain_data(seq, lens)
            narrow += sum(len(rows) for rows, w in model.width_groups((inputs[1] != 0).sum(1), seq.size(1))
                          if w < seq.size(1))
            assert_same_loss_and_grads(model, model.pretrain, lambda *x: RecBoleS3Rec.pretrain(model, *x), *inputs)
    finally:
        model.train()
    assert narrow > 0, "some rows must be encoded on fewer columns, or the narrowing is not tested"


def test_finetune_loss_and_gradients_equal_recboles(tiny_ds, tmp_path):
    from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 9, "uniform", 0), seed=0)
    m = get_method("s3rec")(**SMALL)
    with m._recbole_view(data):
        attr = next(iter(data.item_attrs))
        m._build(data, train_stage="pretrain", item_attribute=attr)
        torch.save({"state_dict": m.model_.state_dict()}, tmp_path / "pre.pth")
        _, loader = m._build(data, train_stage="finetune", item_attribute=attr, pre_model_path=str(tmp_path / "pre.pth"))
        model = m.model_
        model.eval()
        narrow = 0
        for batch in itertools.islice(iter(loader), 3):
            for cut in (None, 4):   # the loader's histories, then the same cut short (narrow rows)
                if cut is not None:
                    batch[model.ITEM_SEQ_LEN] = batch[model.ITEM_SEQ_LEN].clamp(max=cut)
                    batch[model.ITEM_SEQ][:, cut:] = 0
                lengths = batch[model.ITEM_SEQ_LEN]
                narrow += sum(len(r) for r, w in model.width_groups(lengths, SMALL["MAX_ITEM_LIST_LENGTH"])
                              if w < SMALL["MAX_ITEM_LIST_LENGTH"])
                assert_same_loss_and_grads(model, model.calculate_loss,
                                           lambda b: RecBoleS3Rec.calculate_loss(model, b), batch)
    assert narrow > 0, "some rows must be encoded on fewer columns, or the narrowing is not tested"
