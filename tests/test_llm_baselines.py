"""LLM baselines with tiny random models: P5's random ids and likelihood scoring, CTRL's two stages, CoLLM's two
stages and its stage-1 ablation."""
import numpy as np
import pytest
import torch

from bench.data.candidates import draw
from bench.data.view import FitData
from bench.method import get_method


def test_p5_ids_are_random_and_scores_are_id_likelihoods(tiny_ds):
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)
    m = get_method("p5")(t5="tiny-t5", train_samples=16, epochs=2, batch_size=8, valid_users=4, history_len=4).fit(data)
    ids = m.item_ids_
    assert sorted(ids) == list(range(1, tiny_ds.n_items + 1))
    assert np.corrcoef(ids, np.arange(len(ids)))[0, 1] < 0.5, "ids must not follow item order"
    assert "p5-seq-3" not in m.params.train_templates
    test = draw(tiny_ds, "test", 10, "uniform", 0)
    s = m.score(test.users[:3], test.items[:3])
    assert (s <= 0).all() and s.std() > 0  # sums of log-probabilities
    # the score of one candidate equals its id's log-likelihood computed directly
    u, c = int(test.users[0]), int(test.items[0, 0])
    prompt = m._prompt(m.eval_template_, u, data.history(u, "test"))
    enc = m.tok_([prompt], return_tensors="pt")
    lab = m.tok_([str(m.item_ids_[c])], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        nll = m.model_(**enc, labels=lab).loss.item() * lab.shape[1]
    assert abs(s[0, 0] + nll) < 1e-3
    assert len(m.fit_info_["history"]) >= 1


def test_ctrl_aligns_then_finetunes_and_scores_with_the_collaborative_model_only(tiny_ds):
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)
    m = get_method("ctrl")(text_encoder="tiny-encoder", align_pairs=256, align_epochs=3, epochs=2, batch_size=64)
    m.fit(data)
    info = m.fit_info_
    assert len(info["align"]["infonce"]) == 3 and len(info["finetune"]["history"]) == 2
    assert not hasattr(m, "text_encoder_"), "the text encoder is not kept for scoring"
    full = m.score_full(np.array([0, 1]))
    assert full.shape == (2, tiny_ds.n_items)
    test = draw(tiny_ds, "test", 10, "uniform", 0)
    np.testing.assert_allclose(m.score(test.users[:2], test.items[:2]),
                               np.take_along_axis(m.score_full(test.users[:2]), test.items[:2], 1), atol=1e-6)


def test_collm_two_stages_slots_and_packed_scoring(tiny_ds):
    from tests.tiny_lm import TINY_LM
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)
    m = get_method("collm")(**{**TINY_LM, "cf_epochs": 2, "cf_embedding_size": 8, "mlp_hidden": 16, "max_length": 96})
    m.fit(data)
    assert any("lora_" in k for k, _ in m.model_.named_parameters())
    assert not any(p.requires_grad for p in m.model_.parameters()), "LoRA frozen in stage 2"
    assert m.fit_info_["stage2"]["curve"]["valid"], "stage 2 records its validation curve"
    enc = m._encode("history <user>. buy X <item> next", True)
    assert [k for _, k in enc.slots] == ["<user>", "<item>"] and len(enc.ids) > 2
    test = draw(tiny_ds, "test", 10, "uniform", 0)
    packed = m.score(test.users[:2], test.items[:2])
    # each candidate as its own full sequence (prefix + suffix embeddings, slots filled) gives the same scores
    plain = []
    for r, u in enumerate(test.users[:2]):
        pg, _, items = m.engine_.prompt(int(u), data.history(int(u), "test")[-4:], test.items[r])
        with torch.no_grad():
            segs = m.engine_.embed([(pg.prefix, int(u), -1)] + [(s, int(u), i) for s, i in zip(pg.suffixes, items)])
            from bench.lm.packing import Group, group_margins
            groups = [Group(segs[0][:0], [torch.cat([segs[0], s])])
                      for s in segs[1:]]
            plain.append(group_margins(m.model_, groups, m.engine_.yes_id, m.engine_.no_id).numpy())
    np.testing.assert_allclose(packed, np.stack(plain), atol=1e-4)
    # collaborative embeddings reach the scores: with a mapper that writes something (the trained one may still be at
    # its zero start), another user's embedding changes them
    torch.nn.init.normal_(m.mapper_[-1].weight, std=0.5)
    before = m.score(test.users[:2], test.items[:2])
    m.user_emb_ = m.user_emb_.roll(1, 0)
    assert not np.allclose(m.score(test.users[:2], test.items[:2]), before)
    # the probe's ablation scores with zero slots, as a zero mapper does, and leaves the trained state as it was
    (off_switch,) = m.input_ablations()
    on = m.score(test.users[:2], test.items[:2])
    with off_switch.off():
        off = m.score(test.users[:2], test.items[:2])
    np.testing.assert_array_equal(m.score(test.users[:2], test.items[:2]), on)
    assert not np.allclose(off, on)
    with torch.no_grad():
        m.mapper_[-1].weight.zero_()
        m.mapper_[-1].bias.zero_()
    np.testing.assert_allclose(m.score(test.users[:2], test.items[:2]), off, atol=1e-6)
    # stage 2 starts from the stage-1 model: a fresh mapper writes exactly zero into the slots
    fresh = get_method("collm")(**{**TINY_LM, "cf_embedding_size": 8, "mlp_hidden": 16})
    fresh._setup(data)
    assert fresh.mapper_(torch.randn(3, 8)).abs().max().item() == 0.0


def test_p5_validation_users_are_drawn_once(tiny_ds, monkeypatch):
    from methods.p5 import P5
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)
    seen, original = [], P5.score
    monkeypatch.setattr(P5, "score", lambda self, users, c, split="test": (seen.append(tuple(users)),
                                                                         original(self, users, c, split))[1])
    P5(t5="tiny-t5", train_samples=8, epochs=3, batch_size=8, valid_users=4, history_len=4, patience=10).fit(data)
    assert len(seen) == 3 and len(set(seen)) == 1


def test_collm_stage1_is_collms_own_stage1_model(tiny_ds):
    """The ablation trains what collm trains before its mapper, seed for seed: the same stage-1 curve, and test scores
    equal to collm's with its collaborative slots off."""
    from bench.errors import MethodError
    from tests.tiny_lm import TINY_LM
    params = {**TINY_LM, "cf_epochs": 2, "cf_embedding_size": 8, "mlp_hidden": 16, "max_length": 96}
    fits = {}
    for name in ("collm", "collm-stage1"):
        data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)
        fits[name] = get_method(name)(**params).fit(data)
    full, stage1 = fits["collm"], fits["collm-stage1"]
    def untimed(curve):  # the curve's wall-clock times differ run to run
        return {**curve, "valid": [{k: v for k, v in e.items() if k != "elapsed_s"} for e in curve["valid"]]}
    assert untimed(stage1.fit_info_["stage1"]["curve"]) == untimed(full.fit_info_["stage1"]["curve"])
    assert stage1.fit_info_["stage2"].startswith("skipped") and full.fit_info_["stage2"]["steps"] > 0
    test = draw(tiny_ds, "test", 10, "uniform", 0)
    (off_switch,) = full.input_ablations()
    with off_switch.off():
        np.testing.assert_array_equal(stage1.score(test.users[:3], test.items[:3]),
                                      full.score(test.users[:3], test.items[:3]))
    # the profiles apply without the fixed stage-2 budget; asking for a stage 2 names the clash
    assert get_method("collm-stage1").from_profile("quick").params.stage2_epochs == 0
    assert not get_method("collm-stage1").implements("input_ablations")
    with pytest.raises(MethodError, match=r"collm-stage1: stage2_epochs is fixed by this configuration \(stage2_epochs=0\)"):
        get_method("collm-stage1").from_profile("quick", stage2_epochs=2)
