"""One reader per real-world format. Each returns RawData and fails with a one-line error naming file, line, column."""
from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import DataFormatError
from bench.data.recipe import Recipe

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


@dataclass
class RawData:
    """Interactions (columns user, item, order and maybe rating; all users' rows) and item side information."""
    inter: pd.DataFrame
    items: pd.DataFrame  # index: item token; text columns as str, *_seq columns as space-joined str
    files: list[Path]


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


@contextlib.contextmanager
def file_errors(path: Path, where=lambda: None):
    """Turn what a broken file raises while it is read (truncated gzip, bytes that are not UTF-8, an unreadable
    file) into one line naming the file and, where known, the line (`where()` returns the current line number)."""
    try:
        yield
    except DataFormatError:
        raise
    except UnicodeDecodeError as exc:
        line, col = _first_non_utf8(path)
        where_ = f"line {line}, byte {col}: " if line else ""
        raise DataFormatError(f"{path}: {where_}byte 0x{exc.object[exc.start]:02x} is not UTF-8 (re-encode the file "
                              "as UTF-8)") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        line = where()
        raise DataFormatError(f"{path}: {f'after line {line}: ' if line else ''}truncated or corrupt gzip data "
                              f"({exc})") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _first_non_utf8(path: Path) -> tuple[int | None, int | None]:
    """1-based line and byte column of the first byte that is not UTF-8 (plain files; None inside gzip)."""
    if path.suffix == ".gz":
        return None, None
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return lineno, exc.start + 1
    return None, None


def _atomic_header(path: Path) -> dict[str, str]:
    with file_errors(path), open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    fields = {}
    for col, entry in enumerate(header, start=1):
        name, sep, ftype = entry.partition(":")
        if not sep or ftype not in ATOMIC_TYPES:
            raise DataFormatError(f"{path}: line 1, column {col}: header entry {entry!r} is not name:type "
                                  f"with type in {ATOMIC_TYPES}")
        fields[name] = ftype
    return fields


def read_atomic_file(path: Path, required: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a RecBole atomic file (tab-separated, typed header, CSV-style quoting) as strings, floats checked."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    fields = _atomic_header(path)
    for name in required:
        if name not in fields:
            raise DataFormatError(f"{path}: required column {name!r} missing from header (has {', '.join(fields)})")
    try:
        with file_errors(path):
            df = pd.read_csv(path, sep="\t", header=0, names=list(fields), dtype=str, keep_default_na=False,
                             quotechar='"', doublequote=True, engine="c", encoding="utf-8")
    except pd.errors.ParserError as exc:
        raise DataFormatError(f"{path}: {str(exc).strip().splitlines()[-1]}") from None
    for name, ftype in fields.items():
        if ftype == "float":
            values = pd.to_numeric(df[name].replace("", np.nan), errors="coerce")
            bad = values.isna() & (df[name] != "")
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataFormatError(f"{path}: line {row + 2}, column {name!r}: value {df[name].iloc[row]!r} "
                                      "is not a float")
            df[name] = values
    return df, fields


def read_recbole_atomic(recipe: Recipe, folder: Path) -> RawData:
    col = recipe.col
    inter_path = folder / recipe.files["inter"]
    needed = [col["user"], col["item"], col["order"]]
    if recipe.rating_threshold is not None:
        needed.append(col["rating"])
    inter, _ = read_atomic_file(inter_path, required=tuple(needed))
    for name in (col["user"], col["item"]):
        empty = inter[name] == ""
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            raise DataFormatError(f"{inter_path}: line {row + 2}, column {name!r}: empty id")
    if inter[col["order"]].isna().any():
        row = int(np.flatnonzero(inter[col["order"]].isna().to_numpy())[0])
        raise DataFormatError(f"{inter_path}: line {row + 2}, column {col['order']!r}: empty value")
    out = pd.DataFrame({"user": inter[col["user"]], "item": inter[col["item"]], "order": inter[col["order"]]})
    if col["rating"] in inter:
        out["rating"] = inter[col["rating"]]
    files = [inter_path]
    items = pd.DataFrame(index=pd.Index(out["item"].unique(), name="item"))
    if recipe.files.get("item"):
        item_path = folder / recipe.files["item"]
        table, _ = read_atomic_file(item_path, required=(col["item"],))
        table = table.drop_duplicates(subset=col["item"], keep="first").set_index(col["item"])
        table.index.name = "item"
        items = table.astype(str)
        files.append(item_path)
    return RawData(inter=out, items=items, files=files)


def read_amazon2014(recipe: Recipe, folder: Path) -> RawData:
    """The original Amazon 2014 files: reviews_<Cat>_5.json(.gz) (strict JSON lines) and meta_<Cat>.json(.gz)
    (Python-literal lines, parsed with ast.literal_eval: safe, never eval)."""
    reviews_path = folder / recipe.files["reviews"]
    meta_path = folder / recipe.files["meta"]
    rows = []
    if not reviews_path.is_file():
        raise DataFormatError(f"{reviews_path}: file not found")
    lineno = 0
    with file_errors(reviews_path, lambda: lineno), _open_text(reviews_path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{reviews_path}: line {lineno}: not JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise DataFormatError(f"{reviews_path}: line {lineno}: expected a JSON object")
            for key in ("reviewerID", "asin", "overall", "unixReviewTime"):
                if key not in rec:
                    raise DataFormatError(f"{reviews_path}: line {lineno}: field {key!r} missing")
            try:
                rating, time = float(rec["overall"]), float(rec["unixReviewTime"])
            except (TypeError, ValueError):
                raise DataFormatError(f"{reviews_path}: line {lineno}: overall={rec['overall']!r} / "
                                      f"unixReviewTime={rec['unixReviewTime']!r} is not a number") from None
            rows.append((str(rec["reviewerID"]), str(rec["asin"]), time, rating))
    inter = pd.DataFrame(rows, columns=["user", "item", "order", "rating"])
    meta = []
    if not meta_path.is_file():
        raise DataFormatError(f"{meta_path}: file not found")
    lineno = 0
    with file_errors(meta_path, lambda: lineno), _open_text(meta_path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                try:  # some mirrors re-encoded the meta file as strict JSON
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    raise DataFormatError(f"{meta_path}: line {lineno}: not a Python literal or JSON record") from None
            if not isinstance(rec, dict) or "asin" not in rec:
                raise DataFormatError(f"{meta_path}: line {lineno}: record without 'asin'")
            cats = rec.get("categories") or []
            if not isinstance(cats, list):
                raise DataFormatError(f"{meta_path}: line {lineno}, field 'categories': expected a list of lists")
            words = [c.replace(" ", "_") for path in cats for c in (path if isinstance(path, list) else [path])]
            meta.append((str(rec["asin"]), str(rec.get("title") or ""), " ".join(dict.fromkeys(words))))
    items = pd.DataFrame(meta, columns=["item", "title", "categories"]).drop_duplicates("item").set_index("item")
    return RawData(inter=inter, items=items, files=[reviews_path, meta_path])


READERS = {"recbole-atomic": read_recbole_atomic, "amazon2014": read_amazon2014}


def read_raw(recipe: Recipe, folder: Path) -> RawData:
    return READERS[recipe.format](recipe, folder)


def write_atomic(path: Path, df: pd.DataFrame, types: dict[str, str]) -> None:
    """Write a RecBole atomic file (used to feed RecBole the harness's own split)."""
    header = [f"{c}:{types[c]}" for c in df.columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("\t".join(header) + "\n")
        df.to_csv(fh, sep="\t", header=False, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
