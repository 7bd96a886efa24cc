"""BERT4Rec (Sun et al., 2019) through RecBole, with its masked-item training transform. Defaults: RecBole 1.2.1's
BERT4Rec.yaml (2 layers, 2 heads, hidden 64, inner 256, dropout 0.2, mask ratio 0.2, CE loss)."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.recbole_adapter import RecBoleMethod, RecBoleParams, quick_profile


@dataclass
class BERT4RecParams(RecBoleParams):
    n_layers: int = field(default=2, metadata={"help": "transformer layers"})
    n_heads: int = field(default=2, metadata={"help": "attention heads"})
    hidden_size: int = field(default=64, metadata={"help": "embedding / hidden size"})
    inner_size: int = field(default=256, metadata={"help": "feed-forward size"})
    hidden_dropout_prob: float = field(default=0.2, metadata={"help": "dropout on hidden states"})
    attn_dropout_prob: float = field(default=0.2, metadata={"help": "dropout on attention weights"})
    mask_ratio: float = field(default=0.2, metadata={"help": "share of items replaced by [MASK] in training"})
    MAX_ITEM_LIST_LENGTH: int = field(default=50, metadata={"help": "history length the model reads"})
    loss_type: str = field(default="CE", metadata={"help": "CE (softmax over all items) or BPR",
                                                   "choices": ("CE", "BPR")})


class BERT4Rec(RecBoleMethod):
    name = "bert4rec"
    recbole_model = "BERT4Rec"
    description = "bidirectional transformer with masked-item training (RecBole model + training)"
    Params = BERT4RecParams
    # quick budget in epochs, not minutes (reproducible under any load):
    # 7 epochs: what the old 8-minute cap allowed on `beauty` (2 shared cores)
    profiles = quick_profile(7)
    extra_config = {"train_neg_sample_args": None, "transform": "mask_itemseq", "ft_ratio": 0.5}
