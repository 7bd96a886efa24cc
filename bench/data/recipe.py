"""Dataset recipes: small declarative YAML files under datasets/ that say where the data is and how to prepare it."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.errors import RecipeError
from bench.paths import DATA_ROOT_ENV, PROJECT_ROOT, RECIPE_DIR

FORMATS = ("recbole-atomic", "amazon2014")


@dataclass
class Recipe:
    name: str = field(metadata={"help": "recipe name, used on the command line and in results"})
    format: str = field(metadata={"help": f"reader to use: one of {FORMATS}"})
    path: str = field(metadata={"help": "data folder: absolute, relative to the data root, or pkg:<package>/<subdir>"})
    files: dict = field(metadata={"help": "file names in the folder: recbole-atomic {inter, item}; amazon2014 {reviews, meta}"})
    default_root: str | None = field(default=None, metadata={
        "help": f"data root used when neither --data-root nor ${DATA_ROOT_ENV} is given (relative to the project)"})
    description: str = field(default="", metadata={"help": "one line for `bench.py datasets`"})
    rating_threshold: float | None = field(default=None, metadata={
        "help": "keep interactions with rating >= this (the paper: 4); null when the source has no ratings"})
    kcore: int = field(default=5, metadata={"help": "iterative k-core on users and items (the paper: 5)"})
    subsample_users: float | None = field(default=None, metadata={
        "help": "fraction of users kept by a seeded draw after the k-core, followed by another k-core pass"})
    subsample_seed: int = field(default=0, metadata={"help": "seed of the user subsample (part of the dataset identity)"})
    text_field: str | None = field(default=None, metadata={"help": "item text for LLM prompts, e.g. title"})
    fallback_text_field: str | None = field(default=None, metadata={
        "help": "item text used where text_field is missing or empty; results say how many items used it"})
    attribute_field: str | None = field(default=None, metadata={"help": "item attribute tokens (S3Rec pretraining)"})
    category: str = field(default="items", metadata={"help": "the product category word used in prompts, e.g. 'beauty products'"})
    columns: dict = field(default_factory=dict, metadata={
        "help": "column names in the source: user, item, order (time or position), rating"})
    paper_counts: dict | None = field(default=None, metadata={"help": "the paper's Table 1 counts, shown for comparison"})

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise RecipeError(f"recipe {self.name}: format {self.format!r} is not one of {', '.join(FORMATS)}")
        needed = {"recbole-atomic": ("inter",), "amazon2014": ("reviews", "meta")}[self.format]
        for key in needed:
            if key not in (self.files or {}):
                raise RecipeError(f"recipe {self.name}: files.{key} is required for format {self.format}")
        if self.kcore < 1:
            raise RecipeError(f"recipe {self.name}: kcore must be >= 1, got {self.kcore}")
        if self.subsample_users is not None and not 0 < self.subsample_users <= 1:
            raise RecipeError(f"recipe {self.name}: subsample_users must be in (0, 1], got {self.subsample_users}")

    @property
    def col(self) -> dict:
        defaults = {"user": "user_id", "item": "item_id", "order": "timestamp", "rating": "rating"}
        return {**defaults, **(self.columns or {})}

    def resolve_dir(self, data_root: str | os.PathLike | None = None) -> Path:
        """The data folder. Precedence: --data-root, then $LLMREC_DATA_ROOT, then the recipe's default_root. A given
        data root that does not exist is an error even for recipes that do not read it (never silently ignored)."""
        for given, what in ((data_root, "--data-root"), (os.environ.get(DATA_ROOT_ENV), f"${DATA_ROOT_ENV}")):
            if given and not Path(given).is_dir():
                raise RecipeError(f"{what} {given}: no such folder")
        if self.path.startswith("pkg:"):
            pkg, _, sub = self.path[4:].partition("/")
            spec = importlib.util.find_spec(pkg)
            if spec is None or not spec.submodule_search_locations:
                raise RecipeError(f"recipe {self.name}: package {pkg!r} (path {self.path}) is not installed")
            folder = Path(list(spec.submodule_search_locations)[0]) / sub
        elif os.path.isabs(self.path):
            folder = Path(self.path)
        else:
            root = data_root or os.environ.get(DATA_ROOT_ENV) or self.default_root
            if root is None:
                raise RecipeError(f"recipe {self.name}: relative path {self.path!r} needs --data-root or ${DATA_ROOT_ENV}")
            root = Path(root)
            if not root.is_absolute():
                root = PROJECT_ROOT / root
            folder = root / self.path
        if not folder.is_dir():
            raise RecipeError(f"recipe {self.name}: data folder {folder} does not exist "
                              f"(set --data-root or ${DATA_ROOT_ENV})")
        return folder

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that change the prepared data (the cache key and the dataset fingerprint use them)."""
        d = self.to_dict()
        for k in ("description", "default_root", "paper_counts", "path"):
            d.pop(k)
        return d


_PLUGIN_RECIPES: dict[str, Path] = {}  # name -> YAML file, from bench.plugins.register_recipe


def register_recipe(path: Path) -> str:
    """Make a recipe file loadable by its name (plugins); returns the name."""
    path = Path(path).resolve()
    name = load_recipe(str(path)).name
    if (RECIPE_DIR / f"{name}.yaml").is_file() or _PLUGIN_RECIPES.get(name, path) != path:
        raise RecipeError(f"recipe {path}: the name {name!r} is taken")
    _PLUGIN_RECIPES[name] = path
    return name


def available_recipes() -> list[str]:
    from bench.plugins import load_entry_points
    load_entry_points()
    return sorted({p.stem for p in RECIPE_DIR.glob("*.yaml")} | set(_PLUGIN_RECIPES))


def load_recipe(name_or_path: str) -> Recipe:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        from bench.plugins import load_entry_points
        load_entry_points()
        path = _PLUGIN_RECIPES.get(name_or_path, RECIPE_DIR / f"{name_or_path}.yaml")
    if not path.is_file():
        raise RecipeError(f"unknown dataset {name_or_path!r}; valid: {', '.join(available_recipes())}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of fields")
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RecipeError(f"{path}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    raw.setdefault("name", path.stem)
    try:
        return Recipe(**raw)
    except TypeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
