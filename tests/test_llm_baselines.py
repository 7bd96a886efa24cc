"""LLM baselines with tiny random models: P5's random ids and likelihood scoring, CTRL's two stages."""
import numpy as np
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


def test_collm_two_stages_slots_and_cached_scoring(tiny_ds):
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)
    m = get_method("collm")(lm="tiny-causal", cf_epochs=2, cf_embedding_size=8, mlp_hidden=16, train_samples=8,
                            batch_size=4, valid_users=3, history_len=4, title_words=5, max_length=96)
    m.fit(data)
    lora_before = {k: v.clone() for k, v in m.scorer_.model.named_parameters() if "lora_" in k}
    assert lora_before and not any(p.requires_grad for p in m.scorer_.model.parameters()), "LoRA frozen in stage 2"
    assert "valid_auc" in m.fit_info_["stage2"]["history"][0]
    ids, slots = m._ids_and_slots("history <user>. buy X <item> next", True)
    assert [k for _, k in slots] == ["<user>", "<item>"]
    test = draw(tiny_ds, "test", 10, "uniform", 0)
    cached = m.score(test.users[:2], test.items[:2])
    # the same prompts through the uncached path give the same scores
    from bench.lm.samples import Sample
    plain = []
    for r, u in enumerate(test.users[:2]):
        hist = data.history(int(u), "test")[-4:]
        seqs = [m._sample_embeds(Sample(int(u), hist, int(c), 0.0), True) for c in test.items[r]]
        plain.append(m.scorer_.margins_embeds(seqs).detach().numpy())
    np.testing.assert_allclose(cached, np.stack(plain), atol=1e-4)
    # collaborative embeddings matter: another user's embedding changes the scores
    m.user_emb_ = m.user_emb_.roll(1, 0)
    assert not np.allclose(m.score(test.users[:2], test.items[:2]), cached)
