"""The prompt layer: templates (data, bench/lm/templates.yaml) filled from the harness's data."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from bench.errors import BenchError

TEMPLATE_FILE = Path(__file__).with_name("templates.yaml")
KINDS = ("recommendation", "attribute", "adversarial")


@dataclass(frozen=True)
class Template:
    id: str
    kind: str
    tag: str
    text: str
    answer_cue: str = ""
    source: str = ""
    answers: tuple = (" yes", " no")  # the tokens compared at the answer position (first token of each)

    def split_at_target(self) -> tuple[str, str]:
        """Text before and after {target_item}: everything before is shared by a user's candidates."""
        if "{target_item}" not in self.text:
            raise BenchError(f"template {self.id} has no {{target_item}} placeholder")
        head, _, tail = self.text.partition("{target_item}")
        return head, tail


TAGS = ("seen", "unseen")
_KEYS = {f.name for f in dataclasses.fields(Template)}
_REQUIRED = ("id", "kind", "tag", "text")


@lru_cache(maxsize=None)
def _load(path: str) -> dict[str, Template]:
    """A template file's templates; a bad file fails with one line naming it and the problem."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BenchError(f"{path}: cannot read the template file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise BenchError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise BenchError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise BenchError(f"{path}: expected a list of templates (mappings with {', '.join(_REQUIRED)})")
    out = {}
    for n, entry in enumerate(raw, 1):
        name = entry.get("id", f"#{n}")
        missing = [k for k in _REQUIRED if not isinstance(entry.get(k), str) or not entry[k]]
        if missing:
            raise BenchError(f"{path}: template {name} lacks {', '.join(missing)} (a non-empty string each)")
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise BenchError(f"{path}: template {name} has unknown key(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(sorted(_KEYS))}")
        if "answers" in entry:
            if not (isinstance(entry["answers"], list) and len(entry["answers"]) == 2
                    and all(isinstance(a, str) and a.strip() for a in entry["answers"])):
                raise BenchError(f"{path}: template {name} answers must be two words, e.g. [\" yes\", \" no\"]")
            entry["answers"] = tuple(entry["answers"])
        t = Template(**entry)
        if t.kind not in KINDS:
            raise BenchError(f"{path}: template {t.id} has kind {t.kind!r}; valid: {', '.join(KINDS)}")
        if t.tag not in TAGS:
            raise BenchError(f"{path}: template {t.id} has tag {t.tag!r}; valid: {', '.join(TAGS)}")
        if t.id in out:
            raise BenchError(f"{path}: template id {t.id} appears twice")
        out[t.id] = t
    return out


_PLUGIN_FILES: list[str] = []  # template files added by bench.plugins.register_templates


def register_templates(path: Path) -> list[str]:
    """Add a template file (plugins): its ids join the built-in ones; an id may not appear twice. Returns its ids."""
    path = str(Path(path).resolve())
    if path not in _PLUGIN_FILES:
        new = _load(path)
        clash = sorted(set(new) & set(templates()))
        if clash:
            raise BenchError(f"{path}: template id(s) {', '.join(clash)} already exist")
        _PLUGIN_FILES.append(path)
    return list(_load(path))


def templates(path: Path | None = None) -> dict[str, Template]:
    """The templates of one file, or (no path) the built-in ones and every plugin's."""
    if path is not None:
        return _load(str(path))
    from bench.plugins import load_entry_points
    load_entry_points()
    out = dict(_load(str(TEMPLATE_FILE)))
    for extra in _PLUGIN_FILES:
        out.update(_load(extra))
    return out


def template_ids(kind: str = "recommendation") -> tuple[str, ...]:
    """Ids of the templates of one kind: what a method's `template` parameter may name."""
    return tuple(t.id for t in templates().values() if t.kind == kind)


def get_template(template_id: str, path: Path | None = None) -> Template:
    all_t = templates(path)
    if template_id not in all_t:
        raise BenchError(f"unknown template {template_id!r}; valid: {', '.join(all_t)}")
    return all_t[template_id]


@dataclass
class PromptStyle:
    """How items and users are written into a prompt (the robustness suite varies these)."""
    history_len: int = field(default=10, metadata={"help": "most recent items shown (the paper: 3..10)"})
    title_words: int = field(default=12, metadata={"help": "titles cut to this many words (0 = no cut)"})
    separator: str = field(default=", ", metadata={"help": "between history titles"})
    numbered: bool = field(default=False, metadata={"help": "write the history as '1. title' lines"})
    user_entity: str = field(default="The user", metadata={"help": "how the user is named"})

    def title(self, text: str) -> str:
        words = text.split()
        return " ".join(words[:self.title_words]) if self.title_words else text

    def history(self, titles: list[str]) -> str:
        titles = [self.title(t) for t in titles[-self.history_len:]]
        if self.numbered:
            return "\n".join(f"{i}. {t}" for i, t in enumerate(titles, 1))
        return self.separator.join(titles)


def _values(style: PromptStyle, history_titles: list[str], target: str | None, category: str,
            attribute: str | None) -> dict:
    hist = style.history(history_titles)
    return {"user_entity": style.user_entity, "purchase_history": hist, "title_seq": hist, "dataset_item": category,
            "target_item": style.title(target) if target is not None else "{target_item}",
            "attribute": attribute if attribute is not None else "{attribute}"}


def template_fields() -> tuple[str, ...]:
    """The placeholders fill() supplies, in its order: the names a template may use."""
    return tuple(_values(PromptStyle(), [], None, "", None))


def fill(template: Template, style: PromptStyle, history_titles: list[str], target: str | None = None,
         category: str = "items", attribute: str | None = None) -> str:
    return template.text.format(**_values(style, history_titles, target, category, attribute))


def split_prompt(template: Template, style: PromptStyle, history_titles: list[str], target: str,
                 category: str = "items", attribute: str | None = None) -> tuple[str, str]:
    """(prefix, suffix) whose concatenation is the full prompt plus the answer cue; the prefix has no target."""
    head, tail = template.split_at_target()
    values = _values(style, history_titles, target, category, attribute)
    prefix = head.format(**values)
    # the space before the target belongs to the target's first token (BPE writes " word")
    stripped = prefix.rstrip(" ")
    suffix = prefix[len(stripped):] + values["target_item"] + tail.format(**values) + template.answer_cue
    return stripped, suffix


@dataclass
class Encoded:
    """Token ids of one prompt piece; `slots` are (position, name) pairs where a method writes its own vectors
    (CoLLM's <user>/<item>)."""
    ids: list[int]
    slots: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class PromptGroup:
    """One user's (or training sample's) prompt: the shared prefix and one suffix per candidate item."""
    prefix: Encoded
    suffixes: list[Encoded]
    history_used: int      # history items that fit
    history_shown: int     # history items the style asked for (history_used < history_shown: truncated)
    overlong: bool = False  # even with no history the prompt exceeds max_length (it is kept whole)

    @property
    def length(self) -> int:
        """Tokens of the packed row this prompt becomes (the prefix once, then every suffix)."""
        return len(self.prefix) + sum(len(s) for s in self.suffixes)


class PromptBuilder:
    """Writes (prefix, suffixes) token ids for a history and candidate items under the ONE truncation rule used for
    training and for scoring, cached or not: when the prefix plus the longest candidate suffix exceeds
    `max_length` tokens, the oldest history items are dropped, one at a time, until it fits. The instruction, the
    candidate and the answer cue are never cut (a prompt that does not fit even with no history is kept whole and
    flagged `overlong`). `joint=True` writes every candidate's whole prompt as one suffix behind an empty prefix
    (for a bidirectional encoder that must read the history and the candidate together)."""

    def __init__(self, template: Template, style: PromptStyle, item_text: list[str], category: str, encode,
                 max_length: int, joint: bool = False):
        self.template, self.style, self.item_text, self.category = template, style, item_text, category
        self.encode, self.max_length, self.joint = encode, max_length, joint  # encode(text, first) -> Encoded
        head, tail = template.split_at_target()
        self._tail_reads_history = joint or "{purchase_history}" in tail or "{title_seq}" in tail

    def texts(self, titles: list[str], items, attribute: str | None = None) -> list[tuple[str, bool]]:
        """A prompt's pieces as (text, with special tokens): under `joint` each candidate's whole prompt; otherwise
        the prefix, then each candidate's suffix. No truncation (group() applies it)."""
        pairs = [split_prompt(self.template, self.style, titles, self.item_text[int(i)], self.category, attribute)
                 for i in items]
        if self.joint:
            return [(p + s, True) for p, s in pairs]
        return [(pairs[0][0], True)] + [(s, False) for _, s in pairs]

    def _pieces(self, titles: list[str], items, attribute: str | None, suffixes=None):
        if self.joint:
            return Encoded([]), [self.encode(t, first) for t, first in self.texts(titles, items, attribute)]
        pieces = self.texts(titles, items[:1] if suffixes is not None else items, attribute)
        prefix = self.encode(*pieces[0])
        return prefix, suffixes if suffixes is not None else [self.encode(*x) for x in pieces[1:]]

    def group(self, history, items, attribute: str | None = None) -> PromptGroup:
        titles = [self.item_text[int(i)] for i in list(history)[-self.style.history_len:]] \
            if self.style.history_len else []
        shown, suffixes = len(titles), None
        for k in range(shown, -1, -1):
            prefix, suffixes = self._pieces(titles[shown - k:], items, attribute,
                                            None if self._tail_reads_history else suffixes)
            if len(prefix) + max(len(s) for s in suffixes) <= self.max_length:
                return PromptGroup(prefix, suffixes, k, shown)
        return PromptGroup(prefix, suffixes, 0, shown, overlong=True)


def token_encoder(tokenizer):
    """encode(text, first) for a plain tokenizer: special tokens (BOS / CLS) only at the start of the prefix."""
    def encode(text: str, first: bool) -> Encoded:
        return Encoded(tokenizer(text, add_special_tokens=first).input_ids if text else [])
    return encode
