"""Peak memory and time of GANPrompt's soft-token embedding of one scoring chunk (64 users x 100 candidates: one
history prefix and 100 candidate suffixes each), in one padded batch (the old path) against token-bounded,
length-sorted batches (EncoderCausal.embed without gradients), with the real MiniLM encoder and SmolLM2 LM.
Each variant runs in its own process so that its peak RSS is its own. Prints the ratios of peak RSS, of the RSS the
embedding adds above the loaded models, and of time, and the largest difference.

    python benchmarks/ganprompt_embed_memory.py [--users 64] [--candidates 100] [--prefix 150] [--suffix 20]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(variant: str, users: int, candidates: int, prefix: int, suffix: int, out: str) -> None:
    import numpy as np
    import torch
    import methods.ganprompt.backbone as backbone
    from bench.lm.prompts import Encoded
    torch.manual_seed(0)
    torch.set_num_threads(1)
    bb = backbone.EncoderCausal("minilm", "smollm2", 1024, "cpu", "input+last").eval()
    if variant == "one-batch":
        backbone.EMBED_TOKENS = 10 ** 12
    rng = np.random.default_rng(0)
    vocab = bb.enc_tok.vocab_size
    segs = []
    for u in range(users):
        segs.append((Encoded(rng.integers(1000, vocab, prefix).tolist()), u, -1))
        segs += [(Encoded(rng.integers(1000, vocab, suffix).tolist()), u, c) for c in range(candidates)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with torch.no_grad():
        soft = bb.embed(segs)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.save([s.clone() for s in soft[:: max(1, len(soft) // 500)]], out)
    print(json.dumps({"variant": variant, "seconds": secs, "peak_gb": peak / 2 ** 20, "before_gb": base / 2 ** 20}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--prefix", type=int, default=150)
    ap.add_argument("--suffix", type=int, default=20)
    ap.add_argument("--variant", default=None)
    ap.add_argument("--save", default=None)
    a = ap.parse_args()
    if a.variant:
        return one(a.variant, a.users, a.candidates, a.prefix, a.suffix, a.save)
    import torch
    res, variants = {}, ("one-batch", "token-bounded")
    with tempfile.TemporaryDirectory() as tmp:   # per run: two runs at once must not read each other's tensors
        saved = {v: str(Path(tmp) / f"ganprompt_embed_{v}.pt") for v in variants}
        for v in variants:
            out = subprocess.run([sys.executable, __file__, "--variant", v, "--save", saved[v], "--users",
                                  str(a.users), "--candidates", str(a.candidates), "--prefix", str(a.prefix),
                                  "--suffix", str(a.suffix)], capture_output=True, text=True, check=True).stdout
            last = out.strip().splitlines()[-1]
            res[v] = json.loads(last)
            print(last)
        x, y = (torch.load(saved[v], weights_only=True) for v in variants)
    diff = max(float((p - q).abs().max()) for p, q in zip(x, y))
    o, t = res["one-batch"], res["token-bounded"]
    grow = {k: max(r["peak_gb"] - r["before_gb"], 1e-3) for k, r in res.items()}
    print(f"peak RSS one-batch/token-bounded: {o['peak_gb']:.2f} / {t['peak_gb']:.2f} GB = "
          f"{o['peak_gb'] / t['peak_gb']:.2f}x; added by the embedding {grow['one-batch']:.2f} / "
          f"{grow['token-bounded']:.2f} GB = {grow['one-batch'] / grow['token-bounded']:.1f}x; "
          f"time {o['seconds']:.1f} / {t['seconds']:.1f} s = {o['seconds'] / t['seconds']:.2f}x; "
          f"largest soft-token difference {diff:.2e}")


if __name__ == "__main__":
    main()
