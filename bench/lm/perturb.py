"""Prompt variants for the robustness suite (RQ1): held-out templates and perturbations at the levels PromptBench
uses, applied to the instruction text only: placeholders ({purchase_history}, {target_item}, ...) are never touched,
so item titles stay intact, and the answer cue and answer words are kept.

- character: keyboard typos, character swaps (nlpaug)
- word: random deletion (nlpaug), synonym replacement (a small hand-written map of the instruction's words: nlpaug's
  synonyms need WordNet data, which cannot be fetched offline)
- sentence: an irrelevant sentence appended or prepended
- history format: separator, numbered list, title truncation (PromptStyle)
Every variant is deterministic under its seed."""
from __future__ import annotations

import dataclasses
import random
import re
import string
from dataclasses import dataclass, field

import numpy as np

from bench.errors import BenchError
from bench.lm.prompts import PromptStyle, Template, get_template, register_templates, template_fields, templates

PLACEHOLDER = re.compile(r"(\{[a-z_]+\})")
SYNONYMS = {
    "user": "customer", "following": "below", "purchase": "buying", "history": "record", "likely": "probably",
    "buy": "purchase", "next": "afterwards", "items": "products", "bought": "purchased", "will": "is going to",
    "recommend": "suggest", "recommendation": "suggestion", "purchases": "orders", "predict": "guess",
    "decide": "judge", "candidate": "proposed", "previously": "earlier", "customer": "client",
}
DISTRACTORS = ("Note that the weather is sunny today.", "This message was written on a Tuesday.")


@dataclass(frozen=True)
class Variant:
    id: str
    level: str            # seen | template | character | word | sentence | format
    template: Template
    style: dict = field(default_factory=dict)  # PromptStyle overrides

    def apply_style(self, base: PromptStyle) -> PromptStyle:
        return dataclasses.replace(base, **self.style)


def _map_text(text: str, fn) -> str:
    """Apply fn to the instruction pieces between placeholders, keeping each piece's outer whitespace."""
    out = []
    for piece in PLACEHOLDER.split(text):
        if PLACEHOLDER.fullmatch(piece) or not re.search(r"[A-Za-z]{2,}", piece):
            out.append(piece)
            continue
        lead = piece[:len(piece) - len(piece.lstrip())]
        trail = piece[len(piece.rstrip()):]
        core = piece.strip()
        out.append(lead + fn(core) + trail)
    return "".join(out)


def _seeded(seed: int):
    random.seed(seed)
    np.random.seed(seed)


def _nlpaug(aug, seed: int):
    def fn(text: str) -> str:
        _seeded(seed)
        res = aug.augment(text)
        return res[0] if isinstance(res, list) else res
    return fn


def _synonyms(text: str) -> str:
    def swap(m):
        word = m.group(0)
        rep = SYNONYMS.get(word.lower())
        if rep is None:
            return word
        return rep.capitalize() if word[0].isupper() else rep
    return re.sub(r"[A-Za-z]+", swap, text)


def perturb(template: Template, kind: str, seed: int = 0) -> Template:
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw
    if kind == "typo":
        fn = _nlpaug(nac.KeyboardAug(aug_char_p=0.1, aug_word_p=0.2, include_numeric=False), seed)
    elif kind == "charswap":
        fn = _nlpaug(nac.RandomCharAug(action="swap", aug_char_p=0.2, aug_word_p=0.2), seed)
    elif kind == "worddelete":
        fn = _nlpaug(naw.RandomWordAug(action="delete", aug_p=0.2), seed)
    elif kind == "synonym":
        fn = _synonyms
    elif kind in ("append", "prepend"):
        sentence = DISTRACTORS[seed % len(DISTRACTORS)]
        text = template.text + " " + sentence if kind == "append" else sentence + " " + template.text
        return dataclasses.replace(template, id=f"{template.id}+{kind}", text=text)
    else:
        raise BenchError(f"perturbation {kind!r}: valid: typo, charswap, worddelete, synonym, append, prepend")
    return dataclasses.replace(template, id=f"{template.id}+{kind}", text=_map_text(template.text, fn))


LEVELS = {"typo": "character", "charswap": "character", "worddelete": "word", "synonym": "word",
          "append": "sentence", "prepend": "sentence"}
FORMATS = {"sep-pipe": {"separator": " | "}, "numbered": {"numbered": True}, "short-titles": {"title_words": 4}}


# what fill() supplies, less {attribute}: only GANPrompt's attribute variants fill that one
HELD_OUT_FIELDS = tuple(f for f in template_fields() if f != "attribute")


def add_held_out(path) -> list[str]:
    """`bench.py robustness --templates FILE`: a user's held-out templates (templates.yaml's format) join the bank of
    unseen templates, registered as a plugin's are. Each must be usable as one: a recommendation template tagged
    unseen that shows the history and the candidate and names no other placeholder (a typo would fail mid-run)."""
    found = templates(path)
    if not found:
        raise BenchError(f"{path}: no templates in the file")
    for t in found.values():  # checked before registering, so a bad file leaves the bank as it was
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(t.text) if f is not None}
        except ValueError as exc:
            raise BenchError(f"{path}: template {t.id}: {exc} (write a literal brace as {{{{ or }}}})") from None
        problem = (f"kind is {t.kind!r}, not 'recommendation'" if t.kind != "recommendation" else
                   f"tag is {t.tag!r}, not 'unseen'" if t.tag != "unseen" else
                   "no {purchase_history}" if "purchase_history" not in fields else
                   "no {target_item}" if "target_item" not in fields else
                   f"unknown placeholder(s) {', '.join(sorted('{' + f + '}' for f in fields - set(HELD_OUT_FIELDS)))}"
                   f"; valid: {', '.join('{' + f + '}' for f in HELD_OUT_FIELDS)}"
                   if fields - set(HELD_OUT_FIELDS) else None)
        if problem:
            raise BenchError(f"{path}: template {t.id} cannot be a held-out template: {problem}")
    return register_templates(path)


def variants(seen: str = "seen-0", seed: int = 0, include: str = "all") -> list[Variant]:
    """The seen template, every held-out template, and each perturbation / format change of the seen template."""
    base = get_template(seen)
    out = [Variant(seen, "seen", base)]
    if include in ("all", "templates"):
        out += [Variant(t.id, "template", t) for t in templates().values()
                if t.kind == "recommendation" and t.tag == "unseen" and "{purchase_history}" in t.text]
    if include in ("all", "perturbations"):
        out += [Variant(f"{seen}+{k}", level, perturb(base, k, seed)) for k, level in LEVELS.items()]
        out += [Variant(f"{seen}+{k}", "format", base, style) for k, style in FORMATS.items()]
    return out
