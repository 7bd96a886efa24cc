"""Prompt layer, offline model loading recipes and yes/no scoring (tiny random models; no hub access)."""
import numpy as np
import pytest
import torch

from bench.lm.models import tiny_causal_lm, tiny_encoder, tiny_t5
from bench.lm.prompts import PromptStyle, fill, get_template, split_prompt, templates
from bench.lm.yesno import YesNoScorer


def test_seen_template_is_the_papers_verbatim():
    t = get_template("seen-0")
    text = fill(t, PromptStyle(), ["A", "B"], "C")
    assert text == "The user has the following purchase history:\nA, B\ndoes the user likely to buy C next ?"
    assert {x.kind for x in templates().values()} == {"recommendation", "attribute", "adversarial"}


def test_split_prompt_joins_back_and_keeps_target_out_of_prefix():
    t = get_template("adversarial-0")
    style = PromptStyle(history_len=2, title_words=2, numbered=True)
    prefix, suffix = split_prompt(t, style, ["a b c", "d e f", "g h i"], "Target Item Long", "beauty products", "color")
    assert "Target" not in prefix and suffix.startswith(" Target Item") and suffix.endswith("\nanswer:")
    assert prefix + suffix == fill(t, style, ["a b c", "d e f", "g h i"], "Target Item Long", "beauty products",
                                   "color") + t.answer_cue
    assert "1. d e\n2. g h" in prefix and "a b" not in prefix


@pytest.mark.parametrize("max_suffixes", [0, 3])
def test_packed_prefix_sharing_equals_one_full_sequence_per_candidate(max_suffixes):
    """A row [prefix | s1 | ... | sm] under the 4-D mask gives every suffix exactly the margin of prefix + suffix
    run alone; rows of different users padded into one batch do not disturb each other."""
    from bench.lm.packing import Group, group_margins, split_group
    lm = tiny_causal_lm()
    scorer = YesNoScorer(lm.model, lm.tokenizer, batch_size=4)
    prefix = "The user has the following purchase history:\nfirst title, second title\ndoes the user likely to buy"
    suffixes = [f" candidate {i} {'long ' * (i % 4)}next ?\nanswer:" for i in range(7)]
    p, sufs = scorer.encode(prefix, suffixes)
    plain = scorer.score_plain(prefix, suffixes)
    g = Group(scorer.embed(p), [scorer.embed(s) for s in sufs])
    short = Group(scorer.embed(p[:4]), [scorer.embed(s) for s in sufs[:2]])  # a shorter second user: padding
    with torch.no_grad():
        rows = split_group(g, max_suffixes) + [short]
        packed = group_margins(lm.model, rows, scorer.yes_id, scorer.no_id).numpy()
        alone = scorer.margins_plain([p[:4] + s for s in sufs[:2]]).numpy()
    np.testing.assert_allclose(packed[:7], plain, atol=1e-5, rtol=0)
    np.testing.assert_allclose(packed[7:], alone, atol=1e-5, rtol=0)
    assert np.std(plain) > 0, "different candidates must get different scores"


def test_answer_logits_are_taken_only_at_answer_positions(monkeypatch):
    """No [B, T, V] tensor: the output head sees one hidden state per suffix."""
    from bench.lm.packing import Group, answer_logits
    lm = tiny_causal_lm()
    seen = []
    head = lm.model.get_output_embeddings()
    monkeypatch.setattr(head, "forward", lambda x, f=head.forward: (seen.append(tuple(x.shape)), f(x))[1])
    emb = lm.model.get_input_embeddings()
    g = Group(emb(torch.arange(5, 25)), [emb(torch.arange(30, 36)), emb(torch.arange(40, 43))])
    with torch.no_grad():
        out = answer_logits(lm.model, [g])
    assert seen == [(2, 32)] and out.shape == (2, lm.tokenizer.vocab_size)


def test_one_truncation_rule_drops_oldest_history_never_the_question_or_candidate():
    from bench.lm.prompts import PromptBuilder, token_encoder
    lm = tiny_causal_lm()
    t = get_template("seen-0")
    titles = [f"title number {i} with words" for i in range(10)]
    style = PromptStyle(history_len=8, title_words=0)
    enc = token_encoder(lm.tokenizer)
    full = PromptBuilder(t, style, titles, "items", enc, 10_000).group(range(8), [8, 9])
    limit = len(full.prefix) + max(map(len, full.suffixes)) - 12  # forces two history items out
    b = PromptBuilder(t, style, titles, "items", enc, limit)
    g = b.group(range(8), [8, 9])
    assert g.history_shown == 8 and g.history_used < 8 and not g.overlong
    assert len(g.prefix) + max(map(len, g.suffixes)) <= limit
    text = lm.tokenizer.decode(g.prefix.ids, skip_special_tokens=True)
    assert "title number 7" in text and "title number 0" not in text, "the oldest items go first"
    assert text.rstrip().endswith("likely to buy") and g.suffixes == full.suffixes, "question and candidates intact"
    # training (one candidate) and scoring (many) use the same rule: a history that fits both keeps the same tokens
    assert b.group(range(8), [9]).prefix.ids == g.prefix.ids  # candidates of equal length: the same cut
    tiny = PromptBuilder(t, style, titles, "items", enc, 5).group(range(8), [9])
    assert tiny.overlong and tiny.history_used == 0 and "likely to buy" in lm.tokenizer.decode(tiny.prefix.ids)


def test_packed_training_and_scoring_read_the_same_tokens(tiny_ds):
    """The engine builds a training group and a scored candidate set with the same builder: a candidate's margin is
    the same in both (the model is scored on prompts it was trained on)."""
    from bench.data.view import FitData
    from bench.method import get_method
    from tests.tiny_lm import TINY_LM
    m = get_method("tallrec")(**{**TINY_LM, "valid_users": 0, "epochs": 0})
    data = FitData.from_dataset(tiny_ds, seed=0)
    m.fit(data)
    u = 3
    hist = data.history(u, "test")[-4:]
    cands = np.array([5, 9, 11])
    scored = m.score(np.array([u]), cands[None])[0]
    with torch.no_grad():
        trained_view = m.engine_.margins(m.engine_.groups([m.engine_.prompt(u, hist, cands)])).numpy()
    np.testing.assert_allclose(scored, trained_view, atol=1e-5)


def test_tiny_models_are_random_but_well_formed():
    enc, t5 = tiny_encoder(), tiny_t5()
    ids = enc.tokenizer(["hello world"], return_tensors="pt")
    assert enc.model(**ids).last_hidden_state.shape[-1] == 32
    out = t5.model(input_ids=ids["input_ids"], decoder_input_ids=torch.zeros((1, 1), dtype=torch.long))
    assert out.logits.shape[-1] == t5.tokenizer.vocab_size


def test_missing_weights_fail_with_one_line_error(monkeypatch, tmp_path):
    from bench.errors import MethodError
    from bench.lm.models import load_causal_lm, load_t5
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MethodError, match="cannot load") as info:
        load_t5(str(tmp_path / "no-such-t5"))
    assert "\n" not in str(info.value)
    with pytest.raises(MethodError, match="cannot load"):
        load_causal_lm(str(tmp_path / "nothing"))


def test_answer_counter_counts_greedy_yes_no_only_when_scoring():
    import torch
    from bench.lm.yesno import AnswerCounter, yes_no_margin
    c = AnswerCounter()
    logits = torch.tensor([[0.0, 5.0, 1.0, 0.0], [0.0, 1.0, 5.0, 0.0], [9.0, 1.0, 2.0, 0.0]])
    with torch.no_grad():
        m = yes_no_margin(logits, 1, 2, c)
    assert m.tolist() == [4.0, -4.0, -1.0]
    assert c.as_dict()["prompts"] == 3 and c.as_dict()["greedy_answer_valid_rate"] == 2 / 3
    assert c.as_dict()["greedy_yes_rate"] == 1 / 3
    yes_no_margin(logits.requires_grad_(), 1, 2, c)  # training forward passes are not counted
    assert c.prompts == 3
    c.reset()
    assert c.as_dict()["greedy_answer_valid_rate"] is None


def test_finetune_loop_learns_a_separable_toy_task(tiny_ds):
    """The shared loop must move the model: on a handful of training groups seen repeatedly, the loss falls well
    below its start and training GAUC rises (a loop that silently trains nothing fails this)."""
    from bench.data.view import FitData
    from bench.method import get_method
    from tests.tiny_lm import TINY_LM
    data = FitData.from_dataset(tiny_ds, seed=0)
    m = get_method("tallrec")(**{**TINY_LM, "train_groups": 4, "negatives": 3, "batch_groups": 4, "epochs": 30,
                                 "lr": 1e-2, "valid_users": 0, "lora_r": 16, "loss": "softmax",
                                 "lora_targets": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"})
    m.fit(data)
    losses = m.fit_info_["finetune"]["curve"]["train_loss"]
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1  # chance is ln 4 = 1.386


def test_validation_users_are_drawn_once_per_fit(tiny_ds, monkeypatch):
    from bench.data.candidates import draw
    from bench.data.view import FitData
    from bench.lm.engine import YesNoEngine
    from bench.method import get_method
    from tests.tiny_lm import TINY_LM
    seen = []
    original = YesNoEngine.validate
    monkeypatch.setattr(YesNoEngine, "validate",
                        lambda self, data, vset, *a: (seen.append(tuple(vset[0])), original(self, data, vset, *a))[1])
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)
    get_method("tallrec")(**{**TINY_LM, "epochs": 3, "eval_every": 1}).fit(data)
    assert len(seen) == 7 and len(set(seen)) == 1 and len(seen[0]) == TINY_LM["valid_users"]


def test_readout_adapter_trains_on_cached_states_as_on_full_passes(tiny_ds, monkeypatch):
    """With LoRA on the output head only, the loop runs the LM body once per prompt and trains on the cached
    answer-position states: the learning curve and the validation must equal those of full forward passes (no
    dropout), and the cache must really be used."""
    import bench.lm.engine as engine
    from bench.data.candidates import draw
    from bench.data.view import FitData
    from bench.method import get_method
    from tests.tiny_lm import TINY_LM
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)
    kw = {**TINY_LM, "lora_targets": "lm_head", "lora_layers": 0, "lora_dropout": 0.0, "epochs": 3, "eval_every": 1,
          "lr": 1e-2, "loss": "softmax"}
    cached = get_method("tallrec")(**kw).fit(data).fit_info_["finetune"]
    monkeypatch.setattr(engine, "head_only", lambda *a: False)
    full = get_method("tallrec")(**kw).fit(data).fit_info_["finetune"]
    assert cached["cached_states"] and not full["cached_states"]
    np.testing.assert_allclose(cached["curve"]["train_loss"], full["curve"]["train_loss"], atol=1e-4)
    assert max(cached["curve"]["train_loss"]) - min(cached["curve"]["train_loss"]) > 1e-3  # it did train
    for a, b in zip(cached["curve"]["valid"], full["curve"]["valid"]):
        assert a["valid_gauc"] == pytest.approx(b["valid_gauc"], abs=1e-6)
