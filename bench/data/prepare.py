"""Preprocessing: rating filter -> iterative k-core -> seeded user subsample (+ k-core) -> chronological sequences.
The prepared dataset is cached under a fingerprint of the input files and the recipe."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.readers import RawData, read_raw
from bench.data.recipe import Recipe, load_recipe
from bench.errors import RecipeError
from bench.io import load_npz, read_json, sha256_file, sha256_json, write_json, write_npz
from bench.paths import cache_dir

log = logging.getLogger(__name__)

PREP_VERSION = 1  # bump when preprocessing changes what it produces


@dataclass
class SeqDataset:
    """Users' chronological item sequences plus item side information. Items and users are 0-based indices."""
    name: str
    fingerprint: str
    recipe: dict
    user_tokens: list[str]
    item_tokens: list[str]
    seqs: list[np.ndarray]
    item_text: list[str]
    text_source: dict  # field name -> number of items whose text came from it ("none" for no text)
    item_attrs: dict = field(default_factory=dict)  # field -> list of token lists (e.g. S3Rec attributes)
    category: str = "items"

    @property
    def n_users(self) -> int:
        return len(self.user_tokens)

    @property
    def n_items(self) -> int:
        return len(self.item_tokens)

    def stats(self) -> dict:
        n_inter = int(sum(len(s) for s in self.seqs))
        return {"users": self.n_users, "items": self.n_items, "interactions": n_inter, "sequences": self.n_users,
                "sparsity": 1.0 - n_inter / (self.n_users * self.n_items),
                "avg_seq_len": n_inter / max(self.n_users, 1)}


def kcore(inter: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iterative k-core: drop users and items with fewer than k interactions until none is left to drop."""
    while True:
        ucount = inter.groupby("user")["item"].transform("size")
        icount = inter.groupby("item")["user"].transform("size")
        keep = (ucount >= k) & (icount >= k)
        if keep.all():
            return inter
        inter = inter[keep]


def filter_interactions(raw: RawData, recipe: Recipe) -> pd.DataFrame:
    inter = raw.inter
    if recipe.rating_threshold is not None:
        if "rating" not in inter or inter["rating"].isna().all():
            raise RecipeError(f"recipe {recipe.name}: rating_threshold is set but {_files(raw)} has no ratings")
        inter = inter[inter["rating"] >= recipe.rating_threshold]
    inter = kcore(inter, recipe.kcore)
    if recipe.subsample_users is not None and recipe.subsample_users < 1:
        users = np.sort(inter["user"].unique())
        rng = np.random.default_rng(recipe.subsample_seed)
        keep = rng.choice(users, size=max(1, round(len(users) * recipe.subsample_users)), replace=False)
        inter = kcore(inter[inter["user"].isin(keep)], recipe.kcore)
    # leave-one-out needs >= 3 items per user (train, validation, test)
    counts = inter.groupby("user")["item"].transform("size")
    dropped = int((counts < 3).sum())
    if dropped:
        log.warning("dropping %d interactions of users with fewer than 3 items (leave-one-out needs 3)", dropped)
        inter = inter[counts >= 3]
    return inter


def _files(raw: RawData, which: int | None = None) -> str:
    files = raw.files if which is None else raw.files[which:which + 1]
    return ", ".join(str(f) for f in files) or "the data"


def build(recipe: Recipe, raw: RawData, fingerprint: str) -> SeqDataset:
    inter = filter_interactions(raw, recipe).reset_index(drop=True)
    if inter.empty:
        raise RecipeError(f"recipe {recipe.name}: no interaction of {_files(raw)} survives the filters "
                          f"({len(raw.inter)} read; rating >= {recipe.rating_threshold}, {recipe.kcore}-core, "
                          "3+ items per user)")
    # chronological per user; stable sort keeps file order among equal times
    inter = inter.assign(_row=np.arange(len(inter))).sort_values(["user", "order", "_row"], kind="stable")
    user_tokens = sorted(inter["user"].unique())
    item_tokens = sorted(inter["item"].unique())
    item_index = {t: i for i, t in enumerate(item_tokens)}
    items = inter["item"].map(item_index).to_numpy(np.int32)
    bounds = np.flatnonzero(np.r_[True, inter["user"].to_numpy()[1:] != inter["user"].to_numpy()[:-1], True])
    seqs = [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    texts, source = [], {}
    table = raw.items
    for tok in item_tokens:
        text, used = "", "none"
        for fld in (recipe.text_field, recipe.fallback_text_field):
            if fld and fld in table.columns and tok in table.index:
                value = str(table.at[tok, fld]).strip()
                if value and value.lower() != "nan":
                    text, used = value, fld
                    break
        texts.append(text)
        source[used] = source.get(used, 0) + 1
    for fld in (recipe.text_field, recipe.fallback_text_field):
        if fld and fld not in table.columns:
            log.warning("recipe %s: text field %r is not in the item file (has %s)", recipe.name, fld, list(table.columns))
    attrs = {}
    if recipe.attribute_field:
        if recipe.attribute_field not in table.columns:
            raise RecipeError(f"recipe {recipe.name}: attribute_field {recipe.attribute_field!r} not in "
                              f"{_files(raw, 1)} (has {', '.join(table.columns)})")
        col = table[recipe.attribute_field]
        attrs[recipe.attribute_field] = [str(col.get(t, "")).split() for t in item_tokens]
    return SeqDataset(name=recipe.name, fingerprint=fingerprint, recipe=recipe.to_dict(), user_tokens=user_tokens,
                      item_tokens=item_tokens, seqs=seqs, item_text=texts, text_source=source, item_attrs=attrs,
                      category=recipe.category)


def _save(ds: SeqDataset, folder: Path) -> None:
    lengths = np.array([len(s) for s in ds.seqs], dtype=np.int64)
    write_npz(folder / "seqs.npz", items=np.concatenate(ds.seqs).astype(np.int32), lengths=lengths)
    write_json(folder / "meta.json", {
        "name": ds.name, "fingerprint": ds.fingerprint, "recipe": ds.recipe, "user_tokens": ds.user_tokens,
        "item_tokens": ds.item_tokens, "item_text": ds.item_text, "text_source": ds.text_source,
        "item_attrs": ds.item_attrs, "category": ds.category, "prep_version": PREP_VERSION})


def _load(folder: Path) -> SeqDataset:
    z = load_npz(folder / "seqs.npz")
    meta = read_json(folder / "meta.json")
    seqs = np.split(z["items"], np.cumsum(z["lengths"])[:-1])
    meta.pop("prep_version")
    return SeqDataset(seqs=seqs, **meta)


def fingerprint_of(recipe: Recipe, data_root=None) -> tuple[str, Path]:
    folder = recipe.resolve_dir(data_root)
    files = [folder / f for f in recipe.files.values() if f]
    for f in files:
        if not f.is_file():
            raise RecipeError(f"recipe {recipe.name}: data file {f} does not exist")
    key = {"recipe": recipe.identity(), "files": {f.name: sha256_file(f) for f in files}, "prep": PREP_VERSION}
    return sha256_json(key)[:16], folder


def load_dataset(name_or_recipe: str | Recipe, data_root=None, use_cache: bool = True) -> SeqDataset:
    recipe = name_or_recipe if isinstance(name_or_recipe, Recipe) else load_recipe(name_or_recipe)
    fp, folder = fingerprint_of(recipe, data_root)
    cached = cache_dir() / "prepared" / f"{recipe.name}-{fp}"
    if use_cache and (cached / "meta.json").is_file():
        try:
            return _load(cached)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a cache left half-written: prepare it again
            log.warning("prepared cache %s is unreadable (%s: %s); preparing the data again", cached,
                        type(exc).__name__, exc)
    ds = build(recipe, read_raw(recipe, folder), fp)
    if use_cache:
        _save(ds, cached)
    return ds
