"""HGN (Ma et al., 2019), hierarchical gating network, through RecBole. Defaults: RecBole 1.2.1's HGN.yaml
(embedding 64, average pooling, no L2, CE loss)."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.recbole_adapter import RecBoleMethod, RecBoleParams


@dataclass
class HGNParams(RecBoleParams):
    embedding_size: int = field(default=64, metadata={"help": "user and item embedding size"})
    pooling_type: str = field(default="average", metadata={"help": "average or max pooling of gated items",
                                                           "choices": ("average", "max")})
    MAX_ITEM_LIST_LENGTH: int = field(default=50, metadata={"help": "history length the model reads"})
    loss_type: str = field(default="CE", metadata={"help": "CE (softmax over all items) or BPR",
                                                   "choices": ("CE", "BPR")})


class HGN(RecBoleMethod):
    name = "hgn"
    recbole_model = "HGN"
    description = "hierarchical gating network (RecBole model + training)"
    Params = HGNParams
    extra_config = {"train_neg_sample_args": None, "reg_weight": [0.0, 0.0]}
