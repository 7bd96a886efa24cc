"""The RecBole adapter: fed the harness split, scored on harness candidates, consistent with RecBole's predict()."""
import numpy as np
import torch

from bench.data.candidates import draw
from bench.data.view import FitData
from bench.method import get_method

TINY = {"epochs": 3, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "MAX_ITEM_LIST_LENGTH": 20,
        "train_batch_size": 256, "patience": 5}


def test_sasrec_trains_scores_and_matches_predict(tiny_ds):
    valid = draw(tiny_ds, "valid", 30, "uniform", 0)
    data = FitData.from_dataset(tiny_ds, valid_candidates=valid, seed=0)
    m = get_method("sasrec")(**TINY).fit(data)
    info = m.fit_info_
    assert info["epochs_run"] == 3 and info["best_epoch"] >= 0 and len(info["history"]) == 3
    losses = [h["loss"] for h in info["history"]]
    assert losses[-1] < losses[0], "training must reduce the loss"
    test = draw(tiny_ds, "test", 30, "uniform", 0)
    users, items = test.users[:8], test.items[:8]
    fast = m.score(users, items)
    # RecBole's own predict() on repeated interactions gives the same scores as full_sort_predict + gather
    inter = m._interaction(np.repeat(users, items.shape[1]), "test")
    inter.update(type(inter)({m.model_.ITEM_ID: torch.as_tensor(m.item_map_[items.ravel()])}))
    with torch.no_grad():
        slow = m.model_.predict(inter).view(items.shape).numpy()
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-4)


def test_history_never_contains_the_test_item(tiny_ds):
    data = FitData.from_dataset(tiny_ds, seed=0)
    for u, seq in enumerate(tiny_ds.seqs):
        assert len(data.known[u]) == len(seq) - 1
        assert (data.history(u, "test") == seq[:-1]).all() and (data.history(u, "valid") == seq[:-2]).all()


def test_same_seed_same_model(tiny_ds):
    data = FitData.from_dataset(tiny_ds, seed=0)
    test = draw(tiny_ds, "test", 30, "uniform", 0)
    params = {**TINY, "epochs": 1}
    a = get_method("sasrec")(**params).fit(data).score(test.users, test.items)
    b = get_method("sasrec")(**params).fit(data).score(test.users, test.items)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
