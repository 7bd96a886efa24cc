import os
import tempfile
from pathlib import Path

import pytest

# Tests never write into the user's cache or the shared data folder.
os.environ.setdefault("LLMREC_CACHE", tempfile.mkdtemp(prefix="llmrec-test-cache-"))

from bench.data.prepare import load_dataset  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
AMAZON = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "amazon"


from bench.conformance import tiny_recipe  # noqa: E402,F401  (the slice check-method uses too)


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
