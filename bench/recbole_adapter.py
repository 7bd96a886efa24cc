"""A thin adapter that trains RecBole's own model classes on the harness's split and scores the harness's candidates.

- RecBole is fed the harness split: each user's known items (training items + validation target, never the test
  target) as atomic files with timestamp = position; `LS: valid_only` makes RecBole train on everything but the
  validation target, exactly the harness's training items. All items are declared in the .item file, so every
  candidate has an embedding.
- Training runs RecBole's own Trainer._train_epoch; validation (early stopping) is the harness evaluator on the
  harness's validation candidates; the best state is kept in memory (no RecBole checkpoint is ever loaded).
- A finished fit is saved (safetensors) and loaded into the model rebuilt on the same split (`save` / `load`).
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bench.compat import recbole_sandbox
from bench.data.readers import write_atomic
from bench.errors import MethodError
from bench.evaluate import METRIC_KEYS, evaluate_sampled
from bench.io import read_json, write_json
from bench.method import DEVICE, Method, resolve_device
from bench.resume import checkpoint_for, rng_state, set_rng_state
from bench.training import BestOnValidation, CountedBatches, progress

WEIGHTS_FILE = "model.safetensors"


@dataclass
class RecBoleParams:
    epochs: int = field(default=200, metadata={"help": "maximum training epochs", "min": 1})
    max_minutes: float | None = field(default=None, metadata={"help": "safety stop only (the budget is `epochs`): stops after the epoch that crosses it and marks the result budget-stopped, not reproducible"})
    patience: int = field(default=10, metadata={"help": "epochs without validation improvement before stopping",
                                                   "min": 1})
    valid_metric: str = field(default="ndcg@10", metadata={
        "help": "harness metric on validation candidates for early stopping", "choices": METRIC_KEYS})
    valid_every: int = field(default=1, metadata={"help": "validate every N epochs", "min": 1})
    learning_rate: float = field(default=0.001, metadata={"help": "Adam learning rate (RecBole default)"})
    train_batch_size: int = field(default=2048, metadata={"help": "training batch size (RecBole default)",
                                                               "min": 1})
    eval_batch_size: int = field(default=512, metadata={"help": "users per scoring batch", "min": 1})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto (cuda when available)", **DEVICE})


# CPU budget vs the paper's settings; every RecBole baseline uses these unless its module says otherwise.
# quick uses batch 256: with RecBole's 2048 a paper-sized Amazon subsample (~16k training rows) gets 8 optimiser
# steps per epoch, and patience ran out on the slow start before the models learned anything (seen on `beauty`).
# The budget is a number of epochs (with patience), never the clock, so a result does not depend on machine load:
# on `beauty`, 2 shared cores, BPR, Caser, HGN and LightGCN stopped by patience or at 100 epochs within 2.5 minutes;
# models that are slower per epoch set their own epoch count (see their modules). `max_minutes` is a safety stop.
QUICK_SAFETY_MINUTES = 60
DEFAULT_PROFILES = {"quick": {"epochs": 100, "max_minutes": QUICK_SAFETY_MINUTES, "patience": 10,
                              "train_batch_size": 256},
                    "paper": {"epochs": 200, "patience": 10}}


def quick_profile(epochs: int, **more) -> dict[str, dict]:
    """DEFAULT_PROFILES with a fixed quick epoch count (for models slower per epoch than the 100-epoch default)."""
    return {"quick": {**DEFAULT_PROFILES["quick"], "epochs": epochs, **more}, "paper": dict(DEFAULT_PROFILES["paper"])}


class RecBoleMethod(Method):
    """Subclasses set `recbole_model` (the RecBole class name) and a Params dataclass extending RecBoleParams whose
    extra fields are passed to RecBole's config unchanged."""
    recbole_model: ClassVar[str] = ""
    kind = "baseline"
    supports_full = True
    Params = RecBoleParams
    extra_config: ClassVar[dict[str, Any]] = {}
    profiles = DEFAULT_PROFILES

    # ---- building RecBole's view of the harness split ----
    def _model_config(self) -> dict[str, Any]:
        base = {f.name for f in RecBoleParams.__dataclass_fields__.values()}
        params = self.get_params()
        cfg = {k: v for k, v in params.items() if k not in base}
        cfg.update(learning_rate=params["learning_rate"], train_batch_size=params["train_batch_size"],
                   eval_batch_size=params["eval_batch_size"])
        return cfg

    def _write_atomic(self, data, folder: Path, name: str) -> list[str]:
        users = np.repeat(np.arange(data.n_users), [len(k) for k in data.known])
        items = np.concatenate(data.known)
        pos = np.concatenate([np.arange(len(k)) for k in data.known]).astype(np.float64)
        inter = pd.DataFrame({"user_id": users.astype(str), "item_id": items.astype(str), "timestamp": pos})
        write_atomic(folder / name / f"{name}.inter", inter, {"user_id": "token", "item_id": "token", "timestamp": "float"})
        item = pd.DataFrame({"item_id": np.arange(data.n_items).astype(str)})
        types = {"item_id": "token"}
        item_cols = ["item_id"]
        for fld, tokens in self._item_features(data).items():
            item[fld] = [" ".join(t) for t in tokens]
            types[fld] = "token_seq"
            item_cols.append(fld)
        write_atomic(folder / name / f"{name}.item", item, types)
        return item_cols

    def _item_features(self, data) -> dict[str, list[list[str]]]:
        return {}

    def _config(self, data, **overrides):
        import torch
        from recbole.config import Config
        device = resolve_device(self.params.device)
        cfg = {
            "data_path": str(self._tmp), "checkpoint_dir": str(self._tmp / "ckpt"), "show_progress": False,
            "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": self._item_cols},
            "eval_args": {"split": {"LS": "valid_only"}, "order": "TO", "group_by": "user", "mode": "full"},
            "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
            "seed": data.seed, "reproducibility": True, "use_gpu": device == "cuda", "gpu_id": "0",
            "log_wandb": False, "state": "WARNING", "worker": 0,
            **self.extra_config, **self._model_config(), **overrides,
        }
        config = Config(model=self.recbole_model, dataset=self._name, config_dict=cfg)
        config["device"] = torch.device(device)
        self.device_ = device
        return config

    def fit(self, data) -> "RecBoleMethod":
        with self._recbole_view(data):
            self._fit_stages(data)
        return self

    @contextlib.contextmanager
    def _recbole_view(self, data):
        """Inside: the sandbox and the harness split as RecBole atomic files in a temporary folder (`_build` reads
        them); the folder is removed on exit."""
        with recbole_sandbox():
            self._tmp = Path(tempfile.mkdtemp(prefix=f"recbole-{self.name}-"))
            try:
                self.data_ = data
                self._name = f"h{data.fingerprint}"
                self._item_cols = self._write_atomic(data, self._tmp, self._name)
                self.resumed_ = []
                yield
            finally:
                shutil.rmtree(self._tmp, ignore_errors=True)
                del self._tmp, self._name, self._item_cols

    def _fit_stages(self, data) -> None:
        trainer, train_data = self._build(data)
        self._train(data, trainer, train_data)

    def _build(self, data, **overrides):
        """RecBole config, dataset, training loader, model and trainer for the harness split."""
        from recbole.data import create_dataset
        from recbole.data.utils import create_samplers, get_dataloader
        from recbole.utils import get_trainer, init_seed
        config = self._config(data, **overrides)
        init_seed(data.seed, True)
        dataset = create_dataset(config)
        built = dataset.build()
        train_sampler, _, _ = create_samplers(config, dataset, built)
        train_data = get_dataloader(config, "train")(config, built[0], train_sampler, shuffle=True)
        self._check_split(data, config, built[0])
        self.model_ = self._model_class(config)(config, built[0]).to(config["device"])
        self.config_ = config
        self._map_ids(data, dataset)
        return get_trainer(config["MODEL_TYPE"], config["model"])(config, self.model_), train_data

    def _model_class(self, config):
        """The RecBole model class to build: RecBole's own, unless a method returns a subclass of it."""
        from recbole.utils import get_model
        return get_model(config["model"])

    def _check_split(self, data, config, train_ds) -> None:
        """RecBole's training set must be exactly the harness's training items (nothing re-split, nothing lost)."""
        from recbole.utils import ModelType
        expected = sum(len(k) - 1 for k in data.known)
        if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            expected -= data.n_users  # augmentation: a user's first item is never a target
        got = len(train_ds.inter_feat)
        if got != expected:
            raise MethodError(f"method {self.name}: RecBole's training set has {got} rows, the harness split "
                              f"implies {expected}")

    def _map_ids(self, data, dataset) -> None:
        self.item_map_ = np.asarray(dataset.token2id("item_id", [str(i) for i in range(data.n_items)]), dtype=np.int64)
        self.user_map_ = np.asarray(dataset.token2id("user_id", [str(u) for u in range(data.n_users)]), dtype=np.int64)

    # ---- training loop: RecBole's epoch, the harness's validation ----
    def _train(self, data, trainer, train_data, stage: str = "train") -> None:
        p = self.params
        vc = data.valid_candidates
        es = BestOnValidation(self.model_, p.patience, p.max_minutes)
        history, stopped = [], "max_epochs"
        ckpt, state = self._resume(data, stage, trainer, train_data)
        if state is not None:
            es.load_state(state["early_stopping"])
            history = list(state["history"])
        for epoch in range(len(history), p.epochs):
            te = time.perf_counter()
            with progress(len(train_data), f"{self.name} epoch {epoch + 1}/{p.epochs}") as advance:
                loss = trainer._train_epoch(CountedBatches(train_data, advance), epoch)
            loss = float(sum(loss)) if isinstance(loss, tuple) else float(loss)
            entry = {"epoch": epoch, "loss": loss, "train_s": time.perf_counter() - te}
            if vc is not None and (epoch + 1) % p.valid_every == 0:
                scores = self.score(vc.users, vc.items, split="valid")
                value = evaluate_sampled(scores, vc.labels).metrics[p.valid_metric]
                entry["valid"] = value
                es.observe(epoch, value)
            data.log(f"{self.name} epoch {epoch}: loss {loss:.4f}"
                     + (f", valid {p.valid_metric} {entry['valid']:.4f}" if "valid" in entry else "")
                     + f" ({entry['train_s']:.1f}s)")
            history.append(entry)
            if reason := es.stop_reason():
                stopped = reason
                break
            if ckpt is not None and epoch + 1 < p.epochs:
                self._save_epoch(ckpt, trainer, train_data, epoch + 1, early_stopping=es.state(), history=history)
        es.restore()
        self.model_.eval()
        self.fit_info_ = {"epochs_run": len(history), "best_epoch": es.best_epoch, "best_valid": es.best,
                          "valid_metric": p.valid_metric, "stopped_by": stopped,
                          "budget_stopped": es.budget_stopped,
                          "train_minutes": es.elapsed_s / 60, "history": history,
                          "budget": {"epochs": p.epochs, "max_minutes": p.max_minutes, "patience": p.patience},
                          "resumed": list(self.resumed_)}

    # ---- saved fits (bench.fits): the trained weights, put into the model rebuilt on the same split ----
    # A fit outlives its cells: a cell interrupted while scoring (full ranking of a 5-core set takes minutes), or a
    # protocol added later, loads it instead of training again (s3rec on sports-5core: 1.5 hours on one core).
    def save(self, folder: Path) -> None:
        from safetensors.torch import save_model
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_model(self.model_, str(folder / WEIGHTS_FILE))  # save_model, not save_file: it handles tied weights
        write_json(folder / "params.json", self.get_params())

    @classmethod
    def load(cls, folder: Path, data) -> "RecBoleMethod":
        from safetensors.torch import load_model
        folder = Path(folder)
        m = cls(**read_json(folder / "params.json"))
        with m._recbole_view(data):
            m._build_trained(data, folder / WEIGHTS_FILE)
        load_model(m.model_, str(folder / WEIGHTS_FILE), strict=True, device=str(m.config_["device"]))
        m.model_.eval()
        return m

    def _build_trained(self, data, weights: Path) -> None:
        """The model as the fit's last stage built it, for `load` to put the saved weights into."""
        self._build(data)

    # ---- epoch checkpoints (bench.resume): what every RecBole stage saves and restores ----
    def _resume(self, data, stage: str, trainer, train_data):
        """The stage's checkpoint (None outside the runner) and the state it held, already loaded into the model,
        the optimiser and the random generators (None when there is nothing to continue)."""
        ckpt = checkpoint_for(data, stage)
        state = ckpt.load(data.log) if ckpt else None
        if state is not None:  # continue after the last finished epoch: the same result as no break
            self.model_.load_state_dict(state["model"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"], [train_data.generator])
            self.resumed_.append({"stage": stage, "from_epoch": state["epochs_done"]})
            data.log(f"{self.name}: resuming {stage} after {state['epochs_done']} finished epochs from {ckpt.path}")
        return ckpt, state

    def _save_epoch(self, ckpt, trainer, train_data, epochs_done: int, **more) -> None:
        ckpt.save({"model": self.model_.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                   "rng": rng_state([train_data.generator]), **more}, epochs_done)

    # ---- scoring ----
    def _interaction(self, users: np.ndarray, split: str):
        import torch
        from recbole.data.interaction import Interaction
        from recbole.utils import ModelType
        fields = {self.model_.USER_ID: torch.as_tensor(self.user_map_[users])}
        if self.config_["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            # one history per distinct user, then repeated: DIN scores a user's candidates as repeated rows
            max_len = self.config_["MAX_ITEM_LIST_LENGTH"]
            uniq, inverse = np.unique(users, return_inverse=True)
            seq = np.zeros((len(uniq), max_len), dtype=np.int64)
            lengths = np.zeros(len(uniq), dtype=np.int64)
            for row, u in enumerate(uniq):
                hist = self.data_.history(int(u), split)[-max_len:]
                seq[row, :len(hist)] = self.item_map_[hist]
                lengths[row] = len(hist)
            fields[self.model_.ITEM_SEQ] = torch.as_tensor(seq[inverse])
            fields[self.model_.ITEM_SEQ_LEN] = torch.as_tensor(lengths[inverse])
        return Interaction(fields).to(self.config_["device"])

    def _full_scores(self, users: np.ndarray, split: str) -> np.ndarray:
        import torch
        with torch.no_grad():
            scores = self.model_.full_sort_predict(self._interaction(users, split))
        return scores.view(len(users), -1).float().cpu().numpy()

    def score(self, users, candidates, split="test"):
        users = np.asarray(users)
        out = np.empty(np.shape(candidates), dtype=np.float32)
        bs = self.params.eval_batch_size
        for s in range(0, len(users), bs):
            full = self._full_scores(users[s:s + bs], split)
            out[s:s + bs] = np.take_along_axis(full, self.item_map_[np.asarray(candidates[s:s + bs])], axis=1)
        return out

    def score_full(self, users, split="test"):
        users = np.asarray(users)
        return np.concatenate([self._full_scores(users[s:s + self.params.eval_batch_size], split)[:, self.item_map_]
                               for s in range(0, len(users), self.params.eval_batch_size)])
