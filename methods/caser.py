"""Caser (Tang & Wang, 2018) through RecBole. Defaults: RecBole 1.2.1's Caser.yaml (embedding 64, 4 vertical and 16
horizontal filters, dropout 0.4, reg 1e-4, CE loss) with the paper's window L = 5 (RecBole's 50 makes every epoch
~10x slower for no gain reported by the Caser paper)."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.recbole_adapter import RecBoleMethod, RecBoleParams


@dataclass
class CaserParams(RecBoleParams):
    embedding_size: int = field(default=64, metadata={"help": "user and item embedding size"})
    dropout_prob: float = field(default=0.4, metadata={"help": "dropout rate"})
    reg_weight: float = field(default=1e-4, metadata={"help": "L2 regularisation weight"})
    nv: int = field(default=4, metadata={"help": "vertical convolution filters"})
    nh: int = field(default=8, metadata={"help": "horizontal convolution filters per height"})
    MAX_ITEM_LIST_LENGTH: int = field(default=5, metadata={"help": "window L of recent items (Caser paper: 5)"})
    loss_type: str = field(default="CE", metadata={"help": "CE (softmax over all items) or BPR",
                                                   "choices": ("CE", "BPR")})


class Caser(RecBoleMethod):
    name = "caser"
    recbole_model = "Caser"
    description = "convolutional sequence embedding (RecBole model + training)"
    Params = CaserParams
    extra_config = {"train_neg_sample_args": None}
