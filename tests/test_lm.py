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


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_prefix_cache_equals_plain_scoring_and_batch_size_does_not_matter(batch_size):
    lm = tiny_causal_lm()
    scorer = YesNoScorer(lm.model, lm.tokenizer, batch_size=batch_size)
    prefix = "The user has the following purchase history:\nfirst title, second title\ndoes the user likely to buy"
    suffixes = [f" candidate {i} {'long ' * (i % 4)}next ?\nanswer:" for i in range(7)]
    plain = scorer.score_plain(prefix, suffixes)
    cached = scorer.score_cached(prefix, suffixes)
    np.testing.assert_allclose(cached, plain, atol=1e-4, rtol=0)
    reference = YesNoScorer(lm.model, lm.tokenizer, batch_size=7).score_plain(prefix, suffixes)
    np.testing.assert_allclose(plain, reference, atol=1e-5, rtol=0)
    assert np.std(plain) > 0, "different candidates must get different scores"


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
