"""Every registered method passes the same contract on a tiny slice of real data (scikit-learn's check_estimator,
for recommenders)."""
import pytest

from bench.data.candidates import draw
from bench.data.view import FitData
from bench.evaluate import evaluate_sampled
from bench.conformance import class_checks, fitted_checks
from bench.method import _REGISTRY, available, get_method, register
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
TINY["textsim"] = TINY["textsim-llm-input"] = {"encoder": "tiny-encoder"}
TINY["p5"] = {"t5": "tiny-t5", "train_samples": 16, "epochs": 1, "batch_size": 8, "valid_users": 4, "history_len": 4}
TINY["collm"] = TINY["collm-stage1"] = dict(TINY_LM, cf_epochs=2, cf_embedding_size=8, mlp_hidden=16, max_length=96)
TINY["ctrl"] = {"text_encoder": "tiny-encoder", "align_pairs": 200, "align_epochs": 1, "epochs": 2, "batch_size": 64}


def test_every_method_has_a_tiny_config():
    assert set(available()) == set(TINY), "add the new method to TINY with a configuration that runs in seconds"


@pytest.mark.parametrize("name", sorted(TINY))
def test_class_contract(name):
    """bench.conformance's class checks (the ones `bench.py check-method` runs), plus what the tests add."""
    checks = class_checks(get_method(name), TINY[name])
    assert all(c.ok for c in checks), [f"{c.name}: {c.detail}" for c in checks if not c.ok]


@pytest.mark.parametrize("name", sorted(TINY))
def test_fitted_contract(name, tiny_ds):
    """Fit on the tiny slice; score shape, finiteness, batching, invariants, full ranking, records, save / load,
    input ablations."""
    checks = fitted_checks(name, TINY[name], tiny_ds)
    assert all(c.ok for c in checks), [f"{c.name}: {c.detail}" for c in checks if not c.ok]


def test_the_checks_catch_a_broken_method(tiny_ds):
    """Each check can fail: a method that breaks the contract in several ways is caught by each."""
    from methods.pop import Pop

    class Broken(Pop):
        name = "broken-pop"
        description = "a test double"
        supports_full = False  # but it implements score_full

        def fit(self, data):
            super().fit(data)
            self.fit_info_ = {"bad": object()}  # not JSON
            return None  # not self

    cls = register(Broken)
    try:
        failed = {c.name for c in class_checks(cls, {}) if not c.ok}
        assert failed == {"capabilities consistent"}
        fitted = {c.name: c.ok for c in fitted_checks("broken-pop", {}, tiny_ds)}
        assert fitted["fit returns self"] is False
    finally:
        _REGISTRY.pop("broken-pop")


def test_an_input_ablation_that_does_not_switch_back_is_caught(tiny_ds):
    import contextlib
    from bench.method import InputAblation
    from methods.pop import Pop

    class Sticky(Pop):
        name = "sticky-pop"
        description = "a test double: its ablation leaves the counts zeroed"

        @contextlib.contextmanager
        def _off(self):
            self.counts_ = self.counts_ * 0
            yield

        def input_ablations(self):
            return [InputAblation("counts", "popularity counts zeroed", self._off)]

    cls = register(Sticky)
    try:
        fitted = {c.name: c for c in fitted_checks("sticky-pop", {}, tiny_ds)}
        check = fitted["input ablations: off, then on as before"]
        assert not check.ok and "switched back on differ" in check.detail
        assert fitted["score contract: shape, finite, batching, invariants, full ranking"].ok
    finally:
        _REGISTRY.pop("sticky-pop")


def test_learned_methods_beat_random(ml100k):
    """On the embedded dataset pop must clearly beat random (the harness's own floor)."""
    test = draw(ml100k, "test", 99, "uniform", 0)
    data = FitData.from_dataset(ml100k, seed=0)
    rnd = evaluate_sampled(get_method("random")().fit(data).score(test.users, test.items), test.labels).metrics
    pop = evaluate_sampled(get_method("pop")().fit(data).score(test.users, test.items), test.labels).metrics
    assert 0.45 < rnd["auc"] < 0.55 and 0.06 < rnd["hr@10"] < 0.14
    assert pop["hr@10"] > rnd["hr@10"] + 0.1 and pop["auc"] > 0.65


def test_s3rec_pretrains_then_finetunes(tiny_ds):
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 30, "uniform", 0), seed=0)
    info = get_method("s3rec")(**TINY["s3rec"]).fit(data).fit_info_
    assert info["pretrain"]["epochs_run"] == 1 and info["epochs_run"] == 2
