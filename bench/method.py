"""The one method contract, and the registry by name.

A method is a class with:
  - `Params`: a dataclass whose fields carry help text (`field(metadata={"help": ...})`);
  - `profiles`: {"quick": {...}, "paper": {...}} overrides of Params defaults (budget knobs for CPU vs GPU);
  - `__init__(**params)`: stores (validated) parameters only, scikit-learn style; no data, no training;
  - `fit(data: FitData) -> self`: trains on training items; may early-stop on data.valid_candidates;
  - `score(users, candidates, split="test") -> [U, C] float array`: higher = more likely the next item;
  - optionally `score_full(users, split="test") -> [U, n_items]` when `supports_full = True`.
`fit` may record what it did (epochs, best epoch, stop reason) in `self.fit_info_`. LM methods that read an
answer from the LM return a `bench.lm.yesno.AnswerCounter` from `answer_counter()`; the runner records its
valid-answer rate per scored protocol.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bench.errors import MethodError

PROFILES = ("quick", "paper")
_REGISTRY: dict[str, type["Method"]] = {}


@dataclass
class NoParams:
    pass


class Method:
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "baseline"  # "baseline" | "text" (zero-shot text floor) | "llm" | "control" | "proposed"
    description: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    supports_full: ClassVar[bool] = False
    resources: ClassVar[dict] = {"num_cpus": 1}  # what one cell needs from an executor (Ray)

    def __init__(self, **params: Any) -> None:
        fields = {f.name for f in dataclasses.fields(self.Params)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise MethodError(f"method {self.name}: unknown parameter(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(fields)) or '(none)'}")
        self.params = self.Params(**params)

    @classmethod
    def from_profile(cls, profile: str = "quick", **overrides: Any) -> "Method":
        if profile not in PROFILES:
            raise MethodError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
        return cls(**{**cls.profiles.get(profile, {}), **overrides})

    def get_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self.params)

    def fit(self, data) -> "Method":
        raise NotImplementedError

    def score(self, users: np.ndarray, candidates: np.ndarray, split: str = "test") -> np.ndarray:
        raise NotImplementedError

    def score_full(self, users: np.ndarray, split: str = "test") -> np.ndarray:
        raise MethodError(f"method {self.name} does not support full ranking")

    def answer_counter(self):
        """The AnswerCounter of an LM that answers yes/no, else None."""
        return None


def resolve_device(name: str) -> str:
    """The `device` parameter every trainable method has: cpu, cuda, or auto (cuda when available)."""
    if name != "auto":
        return name
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def register(cls: type[Method]) -> type[Method]:
    if not cls.name:
        raise MethodError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise MethodError(f"method name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    import methods  # noqa: F401  (explicit registration happens in methods/__init__.py)


def available() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_method(name: str) -> type[Method]:
    _load_builtin()
    if name not in _REGISTRY:
        raise MethodError(f"unknown method {name!r}; valid: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def coerce_param(cls: type[Method], key: str, text: str) -> Any:
    """Turn a command-line value into the type the Params field declares (no eval)."""
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    if key not in fields:
        raise MethodError(f"method {cls.name}: unknown parameter {key!r}; valid: {', '.join(sorted(fields)) or '(none)'}")
    hints = typing.get_type_hints(cls.Params)
    kind = hints[key]
    base = [a for a in typing.get_args(kind) if a is not type(None)] or [kind]
    base = base[0]
    if text.lower() in ("none", "null") and type(None) in typing.get_args(kind):
        return None
    try:
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if base in (int, float, str):
            return base(text)
    except ValueError:
        raise MethodError(f"method {cls.name}: parameter {key}={text!r} is not a valid {base.__name__}") from None
    raise MethodError(f"method {cls.name}: parameter {key} of type {kind} cannot be set from the command line")
