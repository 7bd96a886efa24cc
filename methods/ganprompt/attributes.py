"""Stage 0: dataset-level attributes. A language model fills {attribute} in the attribute template for sampled
training histories; its single-word predictions (alphabetic, stop-words removed) are counted over the dataset and the
K most frequent kept. Each prompt votes for its top-K words (one vote each): with a small LM the single most likely
word is nearly always the same one, so counting only argmaxes would leave fewer than K attributes. Words of the
category name itself (e.g. "beauty", "products") are echoes of the prompt, not attributes, and are excluded. Works with a causal LM (next-word distribution after the template's text up to {attribute})
or a masked LM (prediction at a [MASK] there). Cached per dataset, generator and settings."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from bench.io import read_json, sha256_json, write_json
from bench.lm.prompts import PromptStyle, fill, get_template
from bench.paths import cache_dir


def _is_bpe(tokenizer) -> bool:
    """Byte-level BPE / sentencepiece vocabularies mark a word start ("Ġword", "▁word"); WordPiece marks the
    continuation ("##ing")."""
    return any(t[:1] in ("Ġ", "▁") for t in tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), 5000)))) if t)


def _word(tokenizer, idx: int, bpe: bool) -> str | None:
    tok = tokenizer.convert_ids_to_tokens(idx)
    if not tok:
        return None
    if bpe:
        return tok[1:].lower() if tok[0] in ("Ġ", "▁") else None
    return None if tok.startswith("##") else tok.lower()


def word_vocabulary(tokenizer, exclude: set[str] = frozenset()) -> torch.Tensor:
    """Boolean mask over the vocabulary: tokens that start one whole alphabetic word (>= 3 letters), neither a
    stop-word nor excluded."""
    bpe = _is_bpe(tokenizer)
    ok = torch.zeros(len(tokenizer), dtype=torch.bool)
    for i in range(len(tokenizer)):
        w = _word(tokenizer, i, bpe)
        if w and len(w) >= 3 and w.isascii() and w.isalpha() and w not in ENGLISH_STOP_WORDS and w not in exclude:
            ok[i] = True
    return ok


@torch.no_grad()
def predict_words(model, tokenizer, prompts: list[str], masked: bool, top: int = 1, exclude: set[str] = frozenset(),
                  batch_size: int = 8) -> list[list[str]]:
    """The `top` most likely allowed words at the {attribute} slot of each prompt."""
    allowed = word_vocabulary(tokenizer, exclude)
    bpe = _is_bpe(tokenizer)
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(prompts), batch_size):
        batch = prompts[i:i + batch_size]
        if masked:
            enc = tokenizer(batch, padding=True, truncation=True, max_length=512, return_tensors="pt").to(device)
            logits = model(**enc).logits
            rows, cols = (enc["input_ids"] == tokenizer.mask_token_id).nonzero(as_tuple=True)
            last = logits[rows, cols]
        else:
            seqs = [tokenizer(p, add_special_tokens=True).input_ids for p in batch]
            n = max(map(len, seqs))
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            ids = torch.tensor([s + [pad] * (n - len(s)) for s in seqs], device=device)
            mask = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in seqs], device=device)
            logits = model(input_ids=ids, attention_mask=mask).logits
            last = logits[torch.arange(len(seqs)), torch.tensor([len(s) - 1 for s in seqs])]
        last = last.float().masked_fill(~allowed.to(device), float("-inf"))
        for row in last.topk(top, dim=-1).indices.tolist():
            out.append([_word(tokenizer, idx, bpe) for idx in row])
    return out


def top_attributes(words: list[str], k: int) -> list[str]:
    values, counts = np.unique(np.array(words), return_counts=True)
    order = np.lexsort((values, -counts))  # most frequent first, ties alphabetical
    return [str(values[i]) for i in order[:k]]


def attribute_prompts(data, users_hist: list[np.ndarray], style: PromptStyle, template_id: str, masked: bool,
                      mask_token: str | None) -> list[str]:
    t = get_template(template_id)
    prompts = []
    for hist in users_hist:
        titles = [data.item_text[i] for i in hist]
        text = fill(t, style, titles, category=data.category, attribute="{attribute}")
        head = text.split("{attribute}")[0]
        prompts.append(head + mask_token + "." if masked else head.rstrip())
    return prompts


def generate_attributes(data, histories: list[np.ndarray], generator, k: int, style: PromptStyle,
                        template_id: str = "attribute-0", cache_key: dict | None = None) -> tuple[list[str], dict]:
    """Returns the K attributes and a record (counts, cache file). `generator` is a Loaded(model, tokenizer, name)
    or a callable returning one, so a cache hit never loads the model."""
    key = sha256_json({"dataset": data.fingerprint, "k": k, "template": template_id, "style": style.__dict__,
                       "n": len(histories), **(cache_key or {})})[:16]
    path = cache_dir() / "attributes" / f"{data.name}-{key}.json"
    if path.is_file():
        rec = read_json(path)
        return rec["attributes"], {**rec, "cache": str(path), "cached": True}
    gen = generator() if callable(generator) else generator
    masked = gen.tokenizer.mask_token is not None and getattr(gen.model.config, "is_decoder", False) is False \
        and "MaskedLM" in type(gen.model).__name__
    prompts = attribute_prompts(data, histories, style, template_id, masked, gen.tokenizer.mask_token)
    exclude = {w.lower() for w in data.category.split()}
    words = [w for ws in predict_words(gen.model, gen.tokenizer, prompts, masked, top=k, exclude=exclude) for w in ws]
    attrs = top_attributes(words, k)
    values, counts = np.unique(np.array(words), return_counts=True)
    rec = {"attributes": attrs, "generator": gen.name, "masked": masked, "n_prompts": len(prompts),
           "counts": {str(v): int(c) for v, c in sorted(zip(values, counts), key=lambda x: -x[1])[:50]},
           "example_prompt": prompts[0] if prompts else ""}
    write_json(path, rec)
    return attrs, {**rec, "cache": str(path), "cached": False}
