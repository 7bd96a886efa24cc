"""SASRec (Kang & McAuley, 2018) through RecBole's own model class and training epoch.
Defaults: RecBole 1.2.1's SASRec.yaml (2 layers, 2 heads, hidden 64, inner 256, dropout 0.5, CE loss over all items,
max sequence length 50, lr 1e-3, batch 2048)."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.recbole_adapter import RecBoleMethod, RecBoleParams, quick_profile


@dataclass
class SASRecParams(RecBoleParams):
    n_layers: int = field(default=2, metadata={"help": "transformer layers"})
    n_heads: int = field(default=2, metadata={"help": "attention heads"})
    hidden_size: int = field(default=64, metadata={"help": "embedding / hidden size"})
    inner_size: int = field(default=256, metadata={"help": "feed-forward size"})
    hidden_dropout_prob: float = field(default=0.5, metadata={"help": "dropout on hidden states"})
    attn_dropout_prob: float = field(default=0.5, metadata={"help": "dropout on attention weights"})
    MAX_ITEM_LIST_LENGTH: int = field(default=50, metadata={"help": "history length the model reads"})
    loss_type: str = field(default="CE", metadata={"help": "CE (softmax over all items) or BPR",
                                                   "choices": ("CE", "BPR")})


class SASRec(RecBoleMethod):
    name = "sasrec"
    recbole_model = "SASRec"
    description = "self-attentive sequential recommendation (RecBole model + training)"
    Params = SASRecParams
    # quick budget in epochs, not minutes (reproducible under any load):
    # 5 epochs: the 8-minute cap allowed 7 on ml-100k (a55126f); with 1 torch thread on the shared 2-core machine
    # an epoch took 160-220 s (republish at 394d4eb, load average 3-8), so README command 1 takes about 15 minutes
    profiles = quick_profile(5)
    extra_config = {"train_neg_sample_args": None}
