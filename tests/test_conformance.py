"""Every registered method passes the same contract on a tiny slice of real data (scikit-learn's check_estimator,
for recommenders)."""
import dataclasses

import numpy as np
import pytest

from bench.data.candidates import draw
from bench.data.view import FitData
from bench.evaluate import evaluate_sampled
from bench.method import Method, available, get_method
from tests.tiny_lm import TINY_GAN, TINY_LM

# Tiny settings so that every method trains in seconds; each method must be listed here.
SEQ = {"epochs": 2, "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 256}
TINY = {
    "random": {},
    "pop": {},
    "itemknn": {"epochs": 1, "k": 20},
    "bpr": {"epochs": 2, "embedding_size": 16},
    "lightgcn": {"epochs": 2, "embedding_size": 16},
    "gru4rec": {**SEQ, "embedding_size": 16, "hidden_size": 16},
    "caser": {**SEQ, "MAX_ITEM_LIST_LENGTH": 5, "embedding_size": 16},
    "sasrec": {**SEQ, "hidden_size": 16, "inner_size": 32, "n_layers": 1},
    "bert4rec": {**SEQ, "hidden_size": 16, "inner_size": 32, "n_layers": 1},
    "hgn": {**SEQ, "embedding_size": 16},
    "din": {**SEQ, "embedding_size": 8, "mlp_hidden_size": "16,16"},
    "s3rec": {**SEQ, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "pretrain_epochs": 1},
}
for _name in ("ganprompt", "ganprompt-noattr", "ganprompt-nogan", "ganprompt-nodiv", "ganprompt-plain"):
    TINY[_name] = dict(TINY_GAN, valid_users=0)
TINY["tallrec"] = dict(TINY_LM, valid_users=0)
TINY["textsim"] = {"encoder": "tiny-encoder"}
TINY["p5"] = {"t5": "tiny-t5", "train_samples": 16, "epochs": 1, "batch_size": 8, "valid_users": 4, "history_len": 4}
TINY["collm"] = dict(TINY_LM, cf_epochs=2, cf_embedding_size=8, mlp_hidden=16, max_length=96)
TINY["ctrl"] = {"text_encoder": "tiny-encoder", "align_pairs": 200, "align_epochs": 1, "epochs": 2, "batch_size": 64}


def test_every_method_has_a_tiny_config():
    assert set(available()) == set(TINY), "add the new method to TINY with a configuration that runs in seconds"


@pytest.fixture(scope="module")
def fitted(tiny_ds):
    valid = draw(tiny_ds, "valid", 30, "uniform", 0)
    out = {}
    for name in available():
        data = FitData.from_dataset(tiny_ds, valid_candidates=valid, seed=0)
        method = get_method(name)(**TINY[name])
        assert method.fit(data) is method, f"{name}.fit must return self"
        out[name] = method
    return out


@pytest.mark.parametrize("name", sorted(TINY))
def test_init_stores_parameters_only(name):
    cls = get_method(name)
    assert issubclass(cls, Method) and cls.name == name and cls.description
    m = cls(**TINY[name])
    assert set(vars(m)) == {"params"}
    assert dataclasses.is_dataclass(m.params)
    for f in dataclasses.fields(m.params):
        assert f.metadata.get("help"), f"{name}.{f.name} needs help text"
    for profile in ("quick", "paper"):
        cls.from_profile(profile)


@pytest.mark.parametrize("name", sorted(TINY))
def test_score_contract(name, fitted, tiny_ds):
    m = fitted[name]
    test = draw(tiny_ds, "test", 30, "uniform", 0).subset(np.arange(12))  # 12 users are enough for the contract
    scores = np.asarray(m.score(test.users, test.items, split="test"))
    assert scores.shape == test.items.shape and np.isfinite(scores).all()
    # batching must not change a user's scores
    half = len(test.users) // 2
    parts = np.concatenate([m.score(test.users[:half], test.items[:half]), m.score(test.users[half:], test.items[half:])])
    np.testing.assert_allclose(parts, scores, rtol=0, atol=1e-6)
    evaluate_sampled(scores, test.labels)  # invariants hold
    if m.supports_full:
        full = np.asarray(m.score_full(test.users[:5], split="test"))
        assert full.shape == (5, tiny_ds.n_items)
        np.testing.assert_allclose(np.take_along_axis(full, test.items[:5], 1), scores[:5], rtol=1e-5, atol=1e-5)


def test_learned_methods_beat_random(fitted, ml100k):
    """On the embedded dataset pop must clearly beat random (the harness's own floor)."""
    test = draw(ml100k, "test", 99, "uniform", 0)
    data = FitData.from_dataset(ml100k, seed=0)
    rnd = evaluate_sampled(get_method("random")().fit(data).score(test.users, test.items), test.labels).metrics
    pop = evaluate_sampled(get_method("pop")().fit(data).score(test.users, test.items), test.labels).metrics
    assert 0.45 < rnd["auc"] < 0.55 and 0.06 < rnd["hr@10"] < 0.14
    assert pop["hr@10"] > rnd["hr@10"] + 0.1 and pop["auc"] > 0.65


def test_s3rec_pretrains_then_finetunes(fitted):
    info = fitted["s3rec"].fit_info_
    assert info["pretrain"]["epochs_run"] == 1 and info["epochs_run"] == 2
