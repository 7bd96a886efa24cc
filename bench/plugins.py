"""Plugins: methods, dataset recipes and prompt templates from outside this package, without editing it.

Two ways in, both loaded before a name is looked up:
  - an installed package declares entry points (pyproject.toml):
        [project.entry-points."llmrec_bench.methods"]
        cooc = "my_package.cooc:CoOccurrence"          # a Method subclass: registered under its `name`
        [project.entry-points."llmrec_bench.plugins"]
        mine = "my_package.bench_plugin"               # a module (or a function to call) that registers things
  - a file or folder given with `bench.py ... --include PATH` (or bench.api.include(PATH)): a .py file, a package
    folder, or a folder whose .py files are imported in name order.
A plugin module registers with `register_method(cls)`, `register_recipe(yaml_path)` and `register_templates(
yaml_path)`; Method subclasses with a `name` that an included module defines are registered without being asked.
`bench.py check-method NAME` then runs the conformance checks every built-in method passes."""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path

from bench.errors import BenchError

GROUPS = ("llmrec_bench.methods", "llmrec_bench.plugins")
_entry_points_loaded = False
_included: dict[str, list[str]] = {}   # resolved path -> method names it registered


class PluginError(BenchError):
    """A plugin cannot be loaded: the message names the entry point or path and the cause."""


def register_method(cls):
    from bench.method import register
    return register(cls)


def register_recipe(path) -> str:
    from bench.data.recipe import register_recipe as add
    return add(Path(path))


def register_templates(path) -> list[str]:
    from bench.lm.prompts import register_templates as add
    return add(Path(path))


def load_entry_points() -> None:
    """Load every installed plugin once (first lookup of a method, recipe or template)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True  # before loading: a plugin that looks a name up must not load them again
    from bench.method import Method
    for group in GROUPS:
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import error of a plugin becomes one line naming it
                raise PluginError(f"plugin entry point {ep.name} = {ep.value} (group {group}) cannot be loaded: "
                                  f"{type(exc).__name__}: {exc}") from None
            if inspect.isclass(obj) and issubclass(obj, Method):
                register_method(obj)
            elif group == "llmrec_bench.methods":
                raise PluginError(f"plugin entry point {ep.name} = {ep.value} (group {group}) is not a Method "
                                  "subclass")
            elif callable(obj) and not inspect.ismodule(obj):
                obj()  # a register() hook; a module registered what it has while it was imported


def _import_file(path: Path):
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"llmrec_plugin_{path.stem.replace('-', '_')}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BenchError:
        del sys.modules[name]
        raise
    except Exception as exc:  # noqa: BLE001 - one line naming the file
        del sys.modules[name]
        raise PluginError(f"--include {path}: {type(exc).__name__}: {exc}") from None
    return module


def include(path) -> list[str]:
    """Load a plugin file or folder once; returns the names of the methods it registered."""
    from bench.method import Method, _REGISTRY, _load_builtin, register
    _load_builtin()  # a plugin's name clash is found now, not when the built-ins load later
    path = Path(path).expanduser().resolve()
    key = str(path)
    if key in _included:
        return _included[key]
    if not path.exists():
        raise PluginError(f"--include {path}: no such file or folder")
    before = set(_REGISTRY)
    if path.is_file():
        if path.suffix != ".py":
            raise PluginError(f"--include {path}: expected a .py file or a folder")
        sys.path.insert(0, str(path.parent))  # so that the plugin can import modules beside it
        modules = [_import_file(path)]
    elif (path / "__init__.py").is_file():
        sys.path.insert(0, str(path.parent))
        try:
            modules = [importlib.import_module(path.name)]
        except BenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise PluginError(f"--include {path}: {type(exc).__name__}: {exc}") from None
    else:
        sys.path.insert(0, str(path))
        modules = [_import_file(p) for p in sorted(path.glob("*.py")) if not p.name.startswith("_")]
        if not modules:
            raise PluginError(f"--include {path}: the folder holds no .py file")
    for module in modules:  # a Method subclass with a name is enough; registering it again is harmless
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, Method) and obj.name and obj.__module__ == module.__name__
                    and _REGISTRY.get(obj.name) is not obj):
                register(obj)
    _included[key] = sorted(set(_REGISTRY) - before)
    return _included[key]


def included() -> tuple[str, ...]:
    """The paths loaded with include(): cells carry them, so that a Ray worker loads the same plugins."""
    return tuple(_included)
