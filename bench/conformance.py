"""The conformance checks every method passes, built-in or plugin (scikit-learn's check_estimator, for
recommenders). tests/test_conformance.py runs them on every registered method; `bench.py check-method NAME` runs
them on one, on the same tiny slice of real data (MovieLens-100K, ~55 users)."""
from __future__ import annotations

import dataclasses
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.method import CAPABILITIES, PROFILES, Method, check_params, get_method

KINDS = ("baseline", "text", "llm", "control", "proposed")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


def tiny_recipe(fraction: float = 0.06, name: str = "ml-tiny"):
    """A seeded slice of the embedded MovieLens-100K: ~55 users, fast enough for any method."""
    from bench.data.recipe import Recipe, load_recipe
    base = load_recipe("ml-100k").to_dict()
    base.update(name=name, subsample_users=fraction, subsample_seed=0, kcore=3)
    return Recipe(**base)


def _run(name: str, fn: Callable[[], Any]) -> Check:
    try:
        detail = fn()
    except Exception as exc:  # noqa: BLE001 - a failed check is reported, the others still run
        return Check(name, False, f"{type(exc).__name__}: {exc}".replace("\n", " "))
    return Check(name, True, detail or "")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# ---- checks of the class alone ----
def _identity(cls) -> str:
    _expect(isinstance(cls, type) and issubclass(cls, Method), "not a subclass of bench.method.Method")
    _expect(bool(cls.name) and get_method(cls.name) is cls, f"not registered under its name {cls.name!r}")
    _expect(bool(cls.description), "no description")
    _expect(cls.kind in KINDS, f"kind {cls.kind!r}; valid: {', '.join(KINDS)}")
    return f"{cls.name} ({cls.kind})"


def _params(cls) -> str:
    _expect(dataclasses.is_dataclass(cls.Params), "Params is not a dataclass")
    hints = typing.get_type_hints(cls.Params)
    for f in dataclasses.fields(cls.Params):
        _expect(bool(f.metadata.get("help")), f"parameter {f.name} has no help text (field metadata 'help')")
        _expect(f.name in hints, f"parameter {f.name} has no type")
    check_params(cls.name, cls.Params())  # the defaults pass their own declared choices and ranges
    return f"{len(dataclasses.fields(cls.Params))} parameters with help text; defaults valid"


def _profiles(cls) -> str:
    unknown = set(cls.profiles) - set(PROFILES)
    _expect(not unknown, f"unknown profile(s) {sorted(unknown)}; valid: {', '.join(PROFILES)}")
    for profile in PROFILES:
        cls.from_profile(profile)
    return ", ".join(PROFILES) + " build"


def _capabilities(cls) -> str:
    _expect(cls.supports_full == cls.implements("score_full"),
            "supports_full must be True exactly when score_full is implemented")
    own_save, own_load = cls.save is not Method.save, cls.load.__func__ is not Method.load.__func__
    _expect(own_save == own_load, "save and load come together (both or neither)")
    return ", ".join(c for c in CAPABILITIES if cls.implements(c)) or "none (all optional)"


def _init_stores_params_only(cls, params: dict) -> str:
    m = cls(**params)
    extra = sorted(set(vars(m)) - {"params"})
    _expect(not extra, f"__init__ must store parameters only; it set {extra}")
    _expect(m.get_params() == dataclasses.asdict(m.params), "get_params() differs from the Params values")
    return ""


def class_checks(cls, params: dict) -> list[Check]:
    return [_run("class: registered, named, described, kind", lambda: _identity(cls)),
            _run("Params: dataclass, typed, help text, valid defaults", lambda: _params(cls)),
            _run("profiles build", lambda: _profiles(cls)),
            _run("capabilities consistent", lambda: _capabilities(cls)),
            _run("__init__ stores parameters only", lambda: _init_stores_params_only(cls, params))]


# ---- checks of a fitted method ----
def _score_contract(m: Method, test, n_items: int) -> str:
    from bench.evaluate import evaluate_sampled
    scores = np.asarray(m.score(test.users, test.items, split="test"))
    _expect(scores.shape == test.items.shape, f"score() shape {scores.shape}, expected {test.items.shape}")
    _expect(bool(np.isfinite(scores).all()), "score() returned NaN or infinity")
    half = len(test.users) // 2  # batching must not change a user's scores
    parts = np.concatenate([m.score(test.users[:half], test.items[:half]),
                            m.score(test.users[half:], test.items[half:])])
    np.testing.assert_allclose(parts, scores, rtol=0, atol=1e-6, err_msg="scores depend on how users are batched")
    evaluate_sampled(scores, test.labels)  # the metric invariants hold
    if m.supports_full:
        full = np.asarray(m.score_full(test.users[:5], split="test"))
        _expect(full.shape == (5, n_items), f"score_full() shape {full.shape}, expected (5, {n_items})")
        np.testing.assert_allclose(np.take_along_axis(full, test.items[:5], 1), scores[:5], rtol=1e-5, atol=1e-5,
                                   err_msg="score_full() disagrees with score() on the same candidates")
    return f"{scores.shape[0]} users x {scores.shape[1]} candidates"


def _records(m: Method) -> str:
    from bench.io import write_json
    with tempfile.TemporaryDirectory() as tmp:
        write_json(Path(tmp) / "fit_info.json", dict(m.fit_info_))  # result.json records it
    _expect(isinstance(m.device_, str), f"device_ is {type(m.device_).__name__}, not a string")
    return f"fit_info_ keys: {', '.join(sorted(m.fit_info_)) or '(none)'}; device_ {m.device_}"


def _save_load(m: Method, data, test) -> str:
    if not m.implements("save"):
        return "not implemented (optional)"
    with tempfile.TemporaryDirectory() as tmp:
        m.save(Path(tmp) / "fit")
        loaded = type(m).load(Path(tmp) / "fit", data)
        np.testing.assert_allclose(np.asarray(loaded.score(test.users, test.items)),
                                   np.asarray(m.score(test.users, test.items)), rtol=1e-5, atol=1e-5,
                                   err_msg="the loaded fit scores differently")
    return "the loaded fit scores the same"


def _input_ablations(m: Method, test) -> str:
    if not m.implements("input_ablations"):
        return "not implemented (optional)"
    ablations = m.input_ablations()
    _expect(bool(ablations), "input_ablations() lists none")
    names = [a.name for a in ablations]
    _expect(len(set(names)) == len(names), f"input ablation names repeat: {names}")
    before = np.asarray(m.score(test.users, test.items))
    for a in ablations:
        with a.off():
            off = np.asarray(m.score(test.users, test.items))
        _expect(off.shape == before.shape and bool(np.isfinite(off).all()),
                f"scores with {a.name} off: shape {off.shape} or not finite")
        np.testing.assert_allclose(np.asarray(m.score(test.users, test.items)), before, rtol=0, atol=1e-6,
                                   err_msg=f"scores after {a.name} was switched back on differ from before")
    return ", ".join(names) + ": scored off, and back on as before"


def fitted_checks(name: str, params: dict, ds, log: Callable[[str], None] | None = None) -> list[Check]:
    """Fit `name` with `params` on `ds` (validation candidates as the runner gives them) and check what it does."""
    from bench.data.candidates import draw
    from bench.data.view import FitData
    cls = get_method(name)
    valid = draw(ds, "valid", 30, "uniform", 0)
    data = FitData.from_dataset(ds, valid_candidates=valid, seed=0, log=log)
    test = draw(ds, "test", 30, "uniform", 0).subset(np.arange(min(12, ds.n_users)))  # 12 users suffice
    state = {}

    def fit():
        m = cls(**params)
        _expect(m.fit(data) is m, "fit() must return self")
        state["m"] = m
        return ""
    out = [_run("fit returns self", fit)]
    if "m" not in state:
        return out + [Check(c, False, "not run: fit failed")
                      for c in ("score contract", "records", "save / load", "input ablations")]
    m = state["m"]
    return out + [_run("score contract: shape, finite, batching, invariants, full ranking",
                       lambda: _score_contract(m, test, ds.n_items)),
                  _run("records: fit_info_ is JSON, device_ a string", lambda: _records(m)),
                  _run("save / load round trip", lambda: _save_load(m, data, test)),
                  _run("input ablations: off, then on as before", lambda: _input_ablations(m, test))]


def check_method(name: str, params: dict | None = None, profile: str | None = "quick", ds=None,
                 log: Callable[[str], None] | None = None) -> list[Check]:
    """Every check for one method: `params` as given (with `profile`'s values under them unless profile is None),
    fitted on `ds` (default: the tiny MovieLens slice)."""
    cls = get_method(name)
    params = {**(cls.profiles.get(profile, {}) if profile else {}), **(params or {})}
    checks = class_checks(cls, params)
    if not all(c.ok for c in checks):
        return checks
    if ds is None:
        from bench.data.prepare import load_dataset
        ds = load_dataset(tiny_recipe())
    return checks + fitted_checks(name, params, ds, log)
