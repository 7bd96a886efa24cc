import gzip
import json

import numpy as np
import pandas as pd
import pytest

from bench.data.candidates import draw, get_candidates, targets_of, train_popularity
from bench.data.prepare import build, kcore, load_dataset
from bench.data.readers import read_raw, read_recbole_atomic
from bench.data.recipe import Recipe, load_recipe
from bench.errors import DataFormatError, RecipeError
from tests.conftest import FIXTURES, needs_amazon


def amazon_fixture_recipe(**kw):
    return Recipe(**{"name": "tiny-amazon", "format": "amazon2014", "path": str(FIXTURES / "amazon2014"),
                     "files": {"reviews": "reviews_Tiny_5.json.gz", "meta": "meta_Tiny.json"},
                     "rating_threshold": 4, "kcore": 3, "text_field": "title", "fallback_text_field": "categories",
                     "category": "beauty products", **kw})


def test_amazon2014_reader_filters_orders_and_names_text_source():
    recipe = amazon_fixture_recipe()
    raw = read_raw(recipe, recipe.resolve_dir())
    assert len(raw.inter) == 56 and (raw.inter["rating"] < 4).sum() > 0
    ds = build(recipe, raw, "fp")
    reviews = [json.loads(l) for l in gzip.open(FIXTURES / "amazon2014" / "reviews_Tiny_5.json.gz", "rt")]
    kept = [r for r in reviews if r["overall"] >= 4]
    for u, seq in zip(ds.user_tokens, ds.seqs):
        times = {r["asin"]: r["unixReviewTime"] for r in kept if r["reviewerID"] == u}
        got = [times[ds.item_tokens[i]] for i in seq]
        assert got == sorted(got), "sequence must be chronological"
    assert all(len(s) >= 3 for s in ds.seqs)
    texts = dict(zip(ds.item_tokens, ds.item_text))
    assert texts["B000002"] == 'Product 2 "Deluxe" cream'
    if "B000009" in texts:  # no title in meta: the named fallback is used and counted
        assert texts["B000009"].startswith("Beauty")
        assert ds.text_source.get("categories") == 1


def test_amazon_meta_is_never_evaluated(tmp_path):
    (tmp_path / "reviews.json").write_text(json.dumps(
        {"reviewerID": "u", "asin": "a", "overall": 5, "unixReviewTime": 1}) + "\n")
    (tmp_path / "meta.json").write_text("__import__('os').system('touch PWNED')\n")
    recipe = amazon_fixture_recipe(path=str(tmp_path), files={"reviews": "reviews.json", "meta": "meta.json"})
    with pytest.raises(DataFormatError, match=r"meta.json: line 1"):
        read_raw(recipe, tmp_path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("line, message", [
    ('{"reviewerID": "u", "asin": "a", "overall": 5}', "unixReviewTime"),
    ('{"reviewerID": "u", "asin": "a", "overall": "five", "unixReviewTime": 1}', "not a number"),
    ("not json", "not JSON"),
])
def test_amazon_reviews_errors_name_file_and_line(tmp_path, line, message):
    good = json.dumps({"reviewerID": "u", "asin": "a", "overall": 5, "unixReviewTime": 1})
    (tmp_path / "r.json").write_text(good + "\n" + line + "\n")
    (tmp_path / "m.json").write_text("{'asin': 'a', 'title': 't'}\n")
    recipe = amazon_fixture_recipe(path=str(tmp_path), files={"reviews": "r.json", "meta": "m.json"})
    with pytest.raises(DataFormatError, match=rf"r.json: line 2.*{message}"):
        read_raw(recipe, tmp_path)


def _atomic_recipe(tmp_path, text):
    (tmp_path / "x.inter").write_text(text)
    return Recipe(name="x", format="recbole-atomic", path=str(tmp_path), files={"inter": "x.inter"})


@pytest.mark.parametrize("text, message", [
    ("user_id:token\titem_id\ttimestamp:float\n", r"line 1, column 2"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t12\nu\ti\tnoon\n", r"line 3, column 'timestamp'.*'noon'"),
    ("user_id:token\titem_id:token\nu\ti\n", r"required column 'timestamp'"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t1\textra\n", r"x.inter"),
])
def test_atomic_reader_errors_are_one_line_and_specific(tmp_path, text, message):
    recipe = _atomic_recipe(tmp_path, text)
    with pytest.raises(DataFormatError, match=message) as info:
        read_recbole_atomic(recipe, tmp_path)
    assert "\n" not in str(info.value)


def test_ml100k_embedded_default(ml100k):
    raw = pd.read_csv(load_recipe("ml-100k").resolve_dir() / "ml-100k.inter", sep="\t")
    raw.columns = ["user", "item", "rating", "ts"]
    expected = kcore(raw[raw["rating"] >= 4].rename(columns={"ts": "order"}), 5)
    assert ml100k.n_users == expected["user"].nunique() and ml100k.n_items == expected["item"].nunique()
    counts = np.bincount(np.concatenate(ml100k.seqs))
    assert counts.min() >= 5 and min(len(s) for s in ml100k.seqs) >= 5
    assert ml100k.text_source == {"movie_title": ml100k.n_items}
    u = 0
    rows = expected[expected["user"] == int(ml100k.user_tokens[u])].sort_values("order", kind="stable")
    assert [ml100k.item_tokens[i] for i in ml100k.seqs[u]] == rows["item"].astype(str).tolist()
    assert targets_of(ml100k, "test")[u] == ml100k.seqs[u][-1] and targets_of(ml100k, "valid")[u] == ml100k.seqs[u][-2]


def test_cache_is_keyed_by_recipe(tmp_path):
    a = load_dataset(amazon_fixture_recipe())
    b = load_dataset(amazon_fixture_recipe())
    c = load_dataset(amazon_fixture_recipe(rating_threshold=None))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert sum(map(len, c.seqs)) > sum(map(len, a.seqs))


def test_recipe_errors():
    with pytest.raises(RecipeError, match="unknown dataset 'nope'; valid: .*ml-100k"):
        load_recipe("nope")
    with pytest.raises(RecipeError, match="format 'csv'"):
        Recipe(name="x", format="csv", path="p", files={})
    with pytest.raises(RecipeError, match="does not exist"):
        Recipe(name="x", format="recbole-atomic", path="/no/such/dir", files={"inter": "a"}).resolve_dir()


def test_candidates_never_touch_history_and_are_shared(tiny_ds, tmp_path):
    for sampler in ("uniform", "popularity"):
        c = draw(tiny_ds, "test", 20, sampler, seed=0)
        assert (c.labels.sum(1) == 1).all()
        for u, row in zip(c.users, c.items):
            negs = row[row != c.target[u]]
            assert len(set(negs)) == 20 and not set(negs) & set(tiny_ds.seqs[u])
        assert len(set(c.labels.argmax(1))) > 5, "the positive must not sit at a fixed column"
    c1, path = get_candidates(tmp_path, tiny_ds, "test", 20, "uniform", 0)
    c2, _ = get_candidates(tmp_path, tiny_ds, "test", 20, "uniform", 0)
    assert path.is_file() and (c1.items == c2.items).all()
    assert not (draw(tiny_ds, "test", 20, "uniform", seed=1).items == c1.items).all()


def test_popularity_sampler_prefers_popular_items(ml100k):
    pop = train_popularity(ml100k)
    uni = draw(ml100k, "test", 50, "uniform", 0)
    popc = draw(ml100k, "test", 50, "popularity", 0)
    def mean_pop(c):
        return pop[c.items[~c.labels]].mean()
    assert mean_pop(popc) > 1.5 * mean_pop(uni)


@needs_amazon()
def test_amazon_recipes_match_the_shared_counts():
    ds = load_dataset("beauty-5core")
    assert (ds.n_users, ds.n_items, sum(map(len, ds.seqs))) == (22363, 12101, 198502)
    assert any('"' in t for t in ds.item_text), "CSV-quoted titles must keep their quotes"
    small = load_dataset("beauty")
    assert 1500 < small.n_users < 2600 and 1200 < small.n_items < 2000
    assert load_dataset("sports").text_source == {"title_words": load_dataset("sports").n_items}


def test_datasets_lists_the_popularity_signal_of_the_leave_one_out_split(tmp_path, capsys):
    from bench import api, cli
    # by hand (training = all but the last two, test target = the last):
    #   u1: a b c -> train a, target c;  u2: a c d -> train a, target d;  u3: c b a -> train c, target a
    # training counts a 2, b 0, c 1, d 0: all 4 items' mean 3/4; the targets c, d, a: (1 + 0 + 2) / 3 = 1
    seqs = {"u1": "abc", "u2": "acd", "u3": "cba"}
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    rows += [f"{u}\t{item}\t{t}" for u, seq in seqs.items() for t, item in enumerate(seq)]
    (tmp_path / "p.inter").write_text("\n".join(rows) + "\n")
    recipe = tmp_path / "p.yaml"
    recipe.write_text(f"name: p\nformat: recbole-atomic\npath: {tmp_path}\nfiles: {{inter: p.inter}}\nkcore: 1\n")
    row = api.datasets(str(recipe)).iloc[0]
    assert (row["items"], row.pop_target, row.pop_all) == (4, 1.0, 0.75) and row.pop_signal == pytest.approx(4 / 3)
    assert cli.main(["datasets", "--dataset", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "Pop. signal (test/all)" in out and "| 1.33 (1.0/0.8)" in out and "count as 0" in out
