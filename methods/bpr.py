"""BPR-MF (Rendle et al., 2009), the paper's MF baseline, through RecBole: matrix factorisation trained with the BPR
pairwise loss and one uniform negative per positive. Defaults: RecBole 1.2.1's BPR.yaml (embedding 64).
A general (non-sequential) model: it scores from the user embedding learned on training items."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.recbole_adapter import RecBoleMethod, RecBoleParams


@dataclass
class BPRParams(RecBoleParams):
    embedding_size: int = field(default=64, metadata={"help": "user and item embedding size"})


class BPR(RecBoleMethod):
    name = "bpr"
    recbole_model = "BPR"
    description = "matrix factorisation with BPR loss (RecBole model + training)"
    Params = BPRParams
    extra_config = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}}
