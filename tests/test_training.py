"""Shared early-stopping rules: strict improvement keeps a copy of the state, patience counts, restore loads it."""
import torch

from bench.results import Protocol
from bench.training import BestOnValidation


def test_best_state_patience_and_restore():
    lin = torch.nn.Linear(2, 1)
    es = BestOnValidation(lin, patience=2)
    assert es.observe(0, 0.5) and es.best_epoch == 0
    kept = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    assert not es.observe(1, 0.5)  # a tie is no improvement
    assert not es.patience_spent()
    assert not es.observe(2, 0.4) and es.patience_spent()
    es.restore()
    assert torch.equal(lin.weight, kept) and es.best == 0.5


def test_no_validation_means_no_restore_and_a_budget_of_none_never_runs_out():
    lin = torch.nn.Linear(2, 1)
    before = lin.weight.detach().clone()
    es = BestOnValidation(lin)
    es.restore()
    assert torch.equal(lin.weight, before) and not es.out_of_time() and not es.patience_spent()
    assert BestOnValidation(lin, max_minutes=0.0).out_of_time()


def test_protocol_tags_round_trip():
    for p in (Protocol(), Protocol("full"), Protocol("full", max_users=50), Protocol("sampled", "popularity", 19, 100)):
        assert Protocol.from_tag(p.tag) == p


def test_stop_reason_names_patience_before_the_budget():
    es = BestOnValidation(torch.nn.Linear(2, 1), patience=1, max_minutes=0.0)
    es.observe(0, 1.0)
    assert es.stop_reason() == "max_minutes"
    es.observe(1, 0.0)
    assert es.stop_reason() == "patience"
    assert BestOnValidation(torch.nn.Linear(2, 1), patience=3).stop_reason() is None
