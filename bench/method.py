"""The one method contract, and the registry by name.

A method is a class with:
  - `Params`: a dataclass whose fields carry help text and, where a value can be wrong, what is valid:
    `field(default=..., metadata={"help": ..., "choices": (...)})`; `"choices"` may be a function returning them
    (e.g. the template ids), `"each": ","` checks every comma-separated element, `"min"` / `"max"` bound a number,
    `"pattern": (regex, description)` checks a string. `__init__` checks every field (type included), so a bad
    value fails before any work with one line that lists what is valid;
  - `profiles`: {"quick": {...}, "paper": {...}} overrides of Params defaults (budget knobs for CPU vs GPU);
  - `__init__(**params)`: stores (validated) parameters only, scikit-learn style; no data, no training;
  - `fit(data: FitData) -> self`: trains on training items; may early-stop on data.valid_candidates;
  - `score(users, candidates, split="test") -> [U, C] float array`: higher = more likely the next item.

Optional capabilities. A method has one when its class overrides the base's version; `Method.implements(name)` says
which, and the harness asks that instead of probing attributes:
  - `score_full(users, split="test") -> [U, n_items]`: full ranking; also set `supports_full = True`;
  - `set_prompt(template, style)`: score with another prompt template (the robustness suite; prompt-based methods);
  - `save(folder)` and the classmethod `load(folder, data) -> Method`: the trained state, so a fit is reused by
    later cells (bench/fits.py); both or neither;
  - `answer_counter() -> AnswerCounter | None`: LMs that read a yes/no answer; the runner records its valid-answer
    rate per scored protocol;
  - `input_ablations() -> list[InputAblation]`: parts of its input a fitted method can score without (CoLLM's
    collaborative slots); the history probe (bench/probe.py) scores each one off, to say what that part carries.
Attributes `fit` may set (the class defaults stand otherwise):
  - `fit_info_`: what fit did (epochs, best epoch, stop reason, curves); recorded as result.json's `training`;
  - `device_`: where the fitted model runs ("cpu", "cuda"); recorded as `environment.device`.
`resources` (a ClassVar) is what one cell needs from an executor (Ray), e.g. {"num_cpus": 2, "num_gpus": 1}.
`bench.conformance` checks all of this for any method (`bench.py check-method NAME`).
"""
from __future__ import annotations

import dataclasses
import numbers
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, ContextManager, Mapping

import numpy as np

from bench.errors import MethodError

PROFILES = ("quick", "paper")
CAPABILITIES = ("score_full", "set_prompt", "save", "answer_counter", "input_ablations")
DEVICE = {"pattern": (r"auto|cpu|mps|cuda(:\d+)?", "cpu, cuda, cuda:N, mps or auto")}  # metadata of `device` fields
_REGISTRY: dict[str, type["Method"]] = {}


@dataclass
class NoParams:
    pass


@dataclass(frozen=True)
class InputAblation:
    """One part of a fitted method's input that it can score without: inside `off()` it scores as if that part held
    nothing; on leaving, it scores as before."""
    name: str
    description: str
    off: Callable[[], ContextManager]


class Method:
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "baseline"  # "baseline" | "text" (zero-shot text floor) | "llm" | "control" | "proposed"
    description: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    supports_full: ClassVar[bool] = False
    resources: ClassVar[dict] = {"num_cpus": 1}  # what one cell needs from an executor (Ray)
    # set by fit(); read-only defaults, so that a method that never sets them still reports something sane
    fit_info_: Mapping[str, Any] = types.MappingProxyType({})
    device_: str = "cpu"

    def __init__(self, **params: Any) -> None:
        fields = {f.name for f in dataclasses.fields(self.Params)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise MethodError(f"method {self.name}: unknown parameter(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(fields)) or '(none)'}")
        self.params = self.Params(**params)
        check_params(self.name, self.params)

    @classmethod
    def from_profile(cls, profile: str = "quick", **overrides: Any) -> "Method":
        if profile not in PROFILES:
            raise MethodError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
        return cls(**{**cls.profiles.get(profile, {}), **overrides})

    @classmethod
    def implements(cls, capability: str) -> bool:
        """Whether this method has the optional `capability` (one of CAPABILITIES): its class overrides the base."""
        if capability not in CAPABILITIES:
            raise MethodError(f"unknown capability {capability!r}; valid: {', '.join(CAPABILITIES)}")
        if capability == "save":
            return (getattr(cls.save, "__func__", cls.save) is not Method.save
                    and cls.load.__func__ is not Method.load.__func__)
        return getattr(cls, capability) is not getattr(Method, capability)

    def get_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self.params)

    @classmethod
    def ignored_params(cls, params: dict[str, Any]) -> set[str]:
        """Recorded params that this configuration never reads (a field of its params class that a variant skips,
        e.g. a control without the stage the field sizes): captions leave them out. The params hash keeps them."""
        return set()

    def fit(self, data) -> "Method":
        raise NotImplementedError

    def score(self, users: np.ndarray, candidates: np.ndarray, split: str = "test") -> np.ndarray:
        raise NotImplementedError

    # ---- optional capabilities: the base versions say the method lacks them ----
    def score_full(self, users: np.ndarray, split: str = "test") -> np.ndarray:
        raise MethodError(f"method {self.name} does not support full ranking")

    def set_prompt(self, template, style: dict | None = None) -> None:
        raise MethodError(f"method {self.name} does not read prompts")

    def save(self, folder) -> None:
        raise MethodError(f"method {self.name} cannot save its fit")

    @classmethod
    def load(cls, folder, data) -> "Method":
        raise MethodError(f"method {cls.name} cannot load a saved fit")

    def answer_counter(self):
        """The AnswerCounter of an LM that answers yes/no, else None."""
        return None

    def input_ablations(self) -> list[InputAblation]:
        raise MethodError(f"method {self.name} declares no input ablations")


class FixedParams:
    """Mixin for a named configuration of a registered method (an ablation or a control), e.g.
    `class NoGAN(FixedParams, GANPrompt)` with `fixed = {"adversarial": "off"}`: the `fixed` params are set, a
    different value for one of them is an error, and the base's profiles apply without them (a profile's budget for
    a stage the variant drops does not clash with the drop)."""
    fixed: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.profiles = {name: {k: v for k, v in prof.items() if k not in cls.fixed}
                        for name, prof in cls.profiles.items()}

    def __init__(self, **params: Any) -> None:
        clash = sorted(k for k in set(params) & set(self.fixed) if params[k] != self.fixed[k])
        if clash:
            raise MethodError(f"method {self.name}: {', '.join(clash)} is fixed by this configuration "
                              f"({', '.join(f'{k}={self.fixed[k]!r}' for k in clash)})")
        super().__init__(**{**self.fixed, **params})


def valid_choices(f: dataclasses.Field) -> tuple | None:
    """The values a Params field may take, where its metadata lists them (a tuple, or a function returning one)."""
    choices = f.metadata.get("choices")
    if choices is None:
        return None
    return tuple(choices() if callable(choices) else choices)


def _type_problem(hint, value) -> str | None:
    allowed = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
    if value is None:
        return None if type(None) in typing.get_args(hint) else "None is not allowed"
    kind = allowed[0]
    ok = {bool: lambda v: isinstance(v, (bool, np.bool_)),
          int: lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
          float: lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}.get(kind)
    if ok is not None and not ok(value):
        return f"expected {kind.__name__}, got {type(value).__name__}"
    return None


def field_problem(f: dataclasses.Field, hint, value) -> str | None:
    """What is wrong with `value` for the Params field `f` (its type hint `hint`), or None."""
    problem = _type_problem(hint, value)
    if problem or value is None:
        return problem
    choices = valid_choices(f)
    if choices is not None:
        sep = f.metadata.get("each")
        items = [v.strip() for v in value.split(sep)] if sep else [value]
        if any(v not in choices for v in items):
            each = f" ({'comma' if sep == ',' else repr(sep)}-separated)" if sep else ""
            return f"valid{each}: {', '.join(map(str, choices))}"
    if "pattern" in f.metadata:
        regex, described = f.metadata["pattern"]
        if not re.fullmatch(regex, value):
            return f"valid: {described}"
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo:
        return f"must be >= {lo}" + (f" and <= {hi}" if hi is not None else "")
    if hi is not None and value > hi:
        return f"must be <= {hi}" + (f" and >= {lo}" if lo is not None else "")
    return None


def check_params(method: str, params) -> None:
    """Every field of a Params instance against its declared type, choices and range; one line on the first bad one."""
    hints = typing.get_type_hints(type(params))
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        problem = field_problem(f, hints[f.name], value)
        if problem:
            raise MethodError(f"method {method}: {f.name}={value!r}: {problem}")


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
    from bench.plugins import load_entry_points
    load_entry_points()  # installed plugins (entry points); --include paths are loaded by the command line


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
