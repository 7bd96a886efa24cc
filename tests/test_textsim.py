"""textsim-llm-input: the text floor on exactly the text the yes/no LLM methods read under the same profile."""
import numpy as np
import pytest

from bench.data.view import FitData
from bench.method import get_method

LLM_TEXT_READERS = ("tallrec", "collm", "ganprompt", "ganprompt-noattr", "ganprompt-nogan", "ganprompt-nodiv",
                    "ganprompt-plain")


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_its_profiles_show_what_the_llm_methods_prompts_show(profile):
    floor = get_method("textsim-llm-input").from_profile(profile).params
    for name in LLM_TEXT_READERS:
        lm = get_method(name).from_profile(profile).params
        assert (lm.history_len, lm.title_words) == (floor.history, floor.title_words), (name, profile)


def test_it_scores_the_last_items_with_cut_titles(tiny_ds):
    data = FitData.from_dataset(tiny_ds)
    floor = get_method("textsim-llm-input").from_profile("quick", encoder="tiny-encoder").fit(data)
    whole = get_method("textsim").from_profile("quick", encoder="tiny-encoder").fit(data)
    cut = get_method("textsim")(encoder="tiny-encoder", title_words=6).fit(data)
    assert np.allclose(floor.item_emb_, cut.item_emb_)
    long_titles = [i for i, t in enumerate(data.item_text) if len(t.split()) > 6]
    assert long_titles and not np.allclose(floor.item_emb_[long_titles], whole.item_emb_[long_titles])

    users = [u for u in range(1, data.n_users) if len(data.history(u, "test")) > 4][:5]
    candidates = np.tile(np.arange(1, 11), (len(users), 1))
    q = np.stack([cut.item_emb_[data.history(u, "test")[-4:]].mean(0) for u in users])
    expected = np.einsum("uh,uch->uc", q / np.linalg.norm(q, axis=1, keepdims=True), cut.item_emb_[candidates])
    assert np.allclose(floor.score(users, candidates), expected)
    assert not np.allclose(cut.score(users, candidates), expected)  # ten items make another query
