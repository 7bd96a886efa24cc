"""The evaluation protocol of a cell: how test candidates are formed and which users are scored.

A protocol is `sampled` (1 positive + N negatives per user, drawn by a sampler) or `full` (every item ranked), with an
optional shared user subsample. Its tag names the results folder: `sampled-<sampler>-n<N>` or `full`, plus `-u<N>`
for a subsample. A Protocol validates itself when built, so a bad tag or value is one line (ProtocolError) wherever
it comes from: the command line, `bench.api`, or a stored result."""
from __future__ import annotations

import numbers
import re
from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError

MODES = ("sampled", "full")
SAMPLERS = ("uniform", "popularity")
# The --users subsample is drawn from this fixed seed, never from the run seed, so every seed of every method scores
# the same users and pooling seeds pairs them all. 0 reproduces the subsample that seed-0 cells drew before.
SUBSAMPLE_SEED = 0
_TAG = re.compile(r"(?:(full)|sampled-(\w+?)-n(\d+))(?:-u(\d+))?")


class ProtocolError(BenchError):
    """A protocol tag or value is not valid (unknown mode or sampler, a count below 1)."""


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def tag_of(mode: str, sampler: str, n_negatives: int, max_users: int | None) -> str:
    """The folder tag, without validation (the audit names whatever a stored result says)."""
    base = "full" if mode == "full" else f"sampled-{sampler}-n{n_negatives}"
    return base + (f"-u{max_users}" if max_users else "")


@dataclass(frozen=True)
class Protocol:
    mode: str = "sampled"          # "sampled" | "full"
    sampler: str = "uniform"       # sampled only: "uniform" | "popularity"
    n_negatives: int = 99          # sampled only
    max_users: int | None = None   # a seeded test-user subsample shared by every method (CPU budgets for LLMs)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ProtocolError(f"protocol mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.mode == "sampled":
            if self.sampler not in SAMPLERS:
                raise ProtocolError(f"sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
            if not _is_count(self.n_negatives):
                raise ProtocolError(f"negatives {self.n_negatives!r}: must be an integer >= 1")
        if self.max_users is not None and not _is_count(self.max_users):
            raise ProtocolError(f"users {self.max_users!r}: must be an integer >= 1 (or None for all test users)")

    @property
    def tag(self) -> str:
        return tag_of(self.mode, self.sampler, self.n_negatives, self.max_users)

    @classmethod
    def from_tag(cls, tag: str) -> "Protocol":
        """Inverse of `tag`: 'full', 'full-u500', 'sampled-uniform-n99', 'sampled-popularity-n19-u100'."""
        m = _TAG.fullmatch(tag)
        if not m:
            raise ProtocolError(f"protocol tag {tag!r}: expected full, full-u<USERS> or "
                                "sampled-<SAMPLER>-n<N>[-u<USERS>]")
        users = int(m.group(4)) if m.group(4) else None
        try:
            if m.group(1):
                return cls("full", max_users=users)
            return cls("sampled", m.group(2), int(m.group(3)), users)
        except ProtocolError as exc:
            raise ProtocolError(f"protocol tag {tag!r}: {exc}") from None

    def chance(self) -> dict[str, float] | None:
        """Expected metrics of random scores over this protocol's 1 + N candidates; None under full ranking."""
        from bench.evaluate import chance_metrics
        return chance_metrics(self.n_negatives + 1) if self.mode == "sampled" else None

    def to_dict(self) -> dict:
        users = {"max_users": self.max_users,
                 "users": "all test users" if not self.max_users else
                 f"subsample of test users drawn with the fixed subsample seed {SUBSAMPLE_SEED}, the same for "
                 "every method and every run seed"}
        if self.max_users:
            users["subsample_seed"] = SUBSAMPLE_SEED
        if self.mode == "full":
            return {"mode": "full", **users,
                    "masking": "each user's earlier items (history) are excluded; the target never is"}
        return {"mode": "sampled", "sampler": self.sampler, "n_negatives": self.n_negatives, **users,
                "negatives": "never an item the user interacted with in any split; positive at a random column"}

    def user_rows(self, n_users: int, seed: int | None = None) -> np.ndarray:
        """Indices of the evaluated users: all, or a subsample that depends only on n_users and SUBSAMPLE_SEED.
        `seed` (the run seed) is accepted for old callers and ignored: pooled seeds must pair the same users."""
        if not self.max_users or self.max_users >= n_users:
            return np.arange(n_users)
        rng = np.random.default_rng([SUBSAMPLE_SEED, 7919])
        return np.sort(rng.choice(n_users, size=self.max_users, replace=False))


def _csv(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def parse_protocols(modes: str, samplers: str = "uniform", negatives: int = 99,
                    max_users: int | None = None) -> tuple[Protocol, ...]:
    """The protocols a run asks for: `modes` is comma-separated `sampled` (one per sampler), `full`, or exact tags
    such as sampled-uniform-n19-u100; duplicates are dropped, the order kept."""
    out = []
    for mode in _csv(modes):
        if mode == "full":
            out.append(Protocol("full", max_users=max_users))
        elif mode == "sampled":
            for sampler in _csv(samplers):
                if sampler not in SAMPLERS:
                    raise ProtocolError(f"--sampler {sampler!r}: valid: {', '.join(SAMPLERS)}")
                out.append(Protocol("sampled", sampler, negatives, max_users))
        elif mode.startswith(("sampled-", "full-")):  # an exact tag
            out.append(Protocol.from_tag(mode))
        else:
            raise ProtocolError(f"--protocol {mode!r}: valid: sampled, full or an exact tag such as "
                                "sampled-uniform-n19-u100 (comma-separated for several)")
    if not out:
        raise ProtocolError(f"--protocol {modes!r}: no protocol given")
    return tuple(dict.fromkeys(out))
