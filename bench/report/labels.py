"""What every report shares about how methods and metrics are shown: the row order of method kinds and the column
headers. Its own module so that the leaderboard can import the significance tests (for its † marks) without the
significance module importing the leaderboard back."""
from __future__ import annotations

KIND_ORDER = {"baseline": 0, "text": 1, "llm": 2, "control": 3, "proposed": 4}
HEADERS = {"auc": "AUC", "gauc": "GAUC", "mrr": "MRR"}


def header(key: str) -> str:
    return HEADERS.get(key, key.upper())
