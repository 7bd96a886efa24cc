import os
import tempfile
from pathlib import Path

import pytest

# Tests never write into the user's cache or the shared data folder.
os.environ.setdefault("LLMREC_CACHE", tempfile.mkdtemp(prefix="llmrec-test-cache-"))

from bench.data.prepare import load_dataset  # noqa: E402
from bench.data.recipe import Recipe, load_recipe  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
AMAZON = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "amazon"


def tiny_recipe(fraction: float = 0.06, name: str = "ml-tiny") -> Recipe:
    """A seeded slice of the embedded MovieLens-100K: ~55 users, fast enough for any method."""
    base = load_recipe("ml-100k").to_dict()
    base.update(name=name, subsample_users=fraction, subsample_seed=0, kcore=3)
    return Recipe(**base)


@pytest.fixture(scope="session")
def tiny_ds():
    return load_dataset(tiny_recipe())


@pytest.fixture(scope="session")
def ml100k():
    return load_dataset("ml-100k")


def needs_amazon():
    return pytest.mark.skipif(not (AMAZON / "Beauty" / "Beauty.inter").is_file(),
                              reason=f"shared Amazon data not found at {AMAZON}")


@pytest.fixture()
def tiny_name(monkeypatch, tiny_ds):
    """Make the tiny slice loadable by name, as a recipe would be."""
    from bench import runner
    real = runner.load_dataset
    monkeypatch.setattr(runner, "load_dataset", lambda name, data_root=None: real(tiny_recipe()) if name == "ml-tiny"
                        else real(name, data_root=data_root))
    return "ml-tiny"
