"""Where things live: project root, cache directory, data roots. Nothing here downloads anything."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RECIPE_DIR = PROJECT_ROOT / "datasets"

DATA_ROOT_ENV = "LLMREC_DATA_ROOT"
CACHE_ENV = "LLMREC_CACHE"


def cache_dir() -> Path:
    """Prepared-data cache; never inside a data folder (CI has those read-only)."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "llmrec-bench")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
