"""One training loop; the objective (standard, fgsm_at, pgd_at, trades, clead) is chosen by name.

    cfg = TrainConfig(objective="clead", epochs=10, eps=8/255)
    history = train(model, data.train, cfg, test_set=data.test, out_dir="runs/demo/clead")

Each objective is one short branch of `objective_step`: the attack (in eval mode,
from `attacks.pgd`) makes x_adv, the loss (from `losses`) is computed in train mode.
Checkpoints are plain state_dicts plus a JSON of metadata; they are written
atomically after every epoch, and `resume=True` continues from the last one.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import data as D
from .attacks import check_inputs, eval_mode, pgd
from .losses import ProjectionHead, clead_inner, clead_loss, embed, trades_inner, trades_loss
from .models import build_model, model_for

OBJECTIVES = ("standard", "fgsm_at", "pgd_at", "trades", "clead")


# ----------------------------------------------------------------------------- setup

def pick_device(preference: str | None = None, verbose: bool = True) -> torch.device:
    """The device to use: `preference` if given, else cuda, then mps, then cpu (printed once)."""
    if preference and preference != "auto":
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {preference!r} requested but CUDA is not available here; "
                             f"use --device cpu (or leave it out to pick automatically)")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose:
        print(f"[clead_edu] using device: {device}")
    return device


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainConfig:
    """Every knob of a training run. eps/alpha are in pixel units ([0,1] scale)."""
    objective: str = "standard"      # one of OBJECTIVES
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1                  # peak SGD learning rate (cosine schedule, linear warm-up)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    eps: float = 8 / 255             # L-inf radius of the training attack
    alpha: float = 2 / 255           # PGD step size
    steps: int = 10                  # PGD steps (fgsm_at: one step of 1.25*eps from a random start)
    beta: float = 6.0                # TRADES weight of the KL term
    lam: float = 1.0                 # C-LEAD weight of the contrastive term
    tau: float = 0.1                 # C-LEAD SupCon temperature
    mu: float = 0.0                  # C-LEAD weight of the representation term in the attack
    positives: str = "class"         # C-LEAD positives: 'class' or 'pair'
    head_dim: int = 0                # C-LEAD projection head output size; 0 = no head
    seed: int = 0
    num_workers: int = 0
    fast: bool = False               # GPU fast path: data on the device, bf16 autocast, channels_last
    compile: bool = False            # torch.compile the model for the training steps

    @classmethod
    def from_preset(cls, objective: str, p: dict, **overrides) -> "TrainConfig":
        """A config for `objective` from a preset dict (`presets.preset(...)`), with overrides."""
        keys = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "eps": "eps",
                "alpha": "alpha", "steps": "train_steps", "beta": "beta", "lam": "lam", "tau": "tau",
                "mu": "mu", "positives": "positives", "head_dim": "head_dim", "seed": "seed",
                "fast": "fast", "compile": "compile"}
        kw = {field: p[key] for field, key in keys.items() if key in p}
        return cls(objective=objective, **{**kw, **overrides})

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("epochs", "batch_size", "steps", "head_dim", "seed", "num_workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name in ("epochs", "batch_size") else 0):
                raise ValueError(f"{name} must be an int >= {1 if name in ('epochs', 'batch_size') else 0}, got {v!r}")
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "eps", "alpha", "beta", "lam", "tau", "mu"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.eps > 1:
            raise ValueError(f"eps={self.eps} is in 0-255 units; write {self.eps:g}/255 (= {self.eps / 255:.4f})")
        if self.lr == 0 or self.tau == 0:
            raise ValueError("lr and tau must be > 0")
        if self.positives not in ("class", "pair"):
            raise ValueError(f"positives must be 'class' or 'pair', got {self.positives!r}")


# ----------------------------------------------------------------------------- objectives

def objective_step(model, x, y, cfg: TrainConfig, head=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to minimise on one batch, and the logits its accuracy is measured on.

    x (B, C, H, W) in [0, 1], y (B,). Adversarial objectives report logits on x_adv.
    """
    attack = dict(eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps, validate=False)
    if cfg.objective == "standard":
        logits = model(x)
        return F.cross_entropy(logits, y), logits
    if cfg.objective == "fgsm_at":  # "fast is better than free" (Wong et al. 2020)
        x_adv = pgd(model, x, y, eps=cfg.eps, alpha=1.25 * cfg.eps, steps=1, validate=False)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits
    if cfg.objective == "pgd_at":   # Madry et al. 2018
        x_adv = pgd(model, x, y, **attack)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits
    if cfg.objective == "trades":   # Zhang et al. 2019
        with torch.no_grad(), eval_mode(model):
            p_clean = model(x).softmax(1)
        x_adv = pgd(model, x, y, loss_fn=trades_inner(p_clean), **attack)
        return trades_loss(model, x, y, x_adv, beta=cfg.beta)
    # clead: perturb to break the prediction (and, with mu > 0, the representation),
    # then pull each clean image and its adversarial twin together.
    with torch.no_grad(), eval_mode(model):
        z_clean = embed(model, x, head)
    x_adv = pgd(model, x, y, loss_fn=clead_inner(z_clean, cfg.mu, head), **attack)
    return clead_loss(model, x, y, x_adv, lam=cfg.lam, tau=cfg.tau, positives=cfg.positives, head=head)


# ----------------------------------------------------------------------------- loop

def run_epoch(loader, model, cfg: TrainConfig, opt=None, sched=None, head=None,
              desc: str = "", progress: bool = True) -> dict:
    """One pass over `loader`; trains when `opt` is given. Returns {'loss', 'acc'} averages.

    With cfg.fast, the training steps (attack included) run under bf16 autocast."""
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.fast and opt is not None)
    model.train(opt is not None)
    total_loss = torch.zeros((), device=device)
    correct, seen = torch.zeros((), device=device), 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
    for i, (x, y) in enumerate(bar):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if i == 0:
            check_inputs(x, y, cfg.eps, model=model)
        with torch.set_grad_enabled(opt is not None), autocast:
            loss, logits = objective_step(model, x, y, cfg, head)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if progress and i % 10 == 0:
            bar.set_postfix(loss=f"{total_loss.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}")
    return {"loss": total_loss.item() / max(seen, 1), "acc": correct.item() / max(seen, 1)}


def fast_setup(model, train_set, cfg: TrainConfig, aug: str | None = None):
    """The fast path's set-up: channels_last weights, cudnn autotuning, and a DeviceLoader with
    the whole training set on the model's device (None if the dataset cannot be held that way).
    The augmentation is the dataset's own (see data.as_tensors) unless `aug` is given."""
    device = next(model.parameters()).device
    model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = D.as_tensors(train_set)
    if data is None:
        return None
    x, y, own_aug = data
    return D.DeviceLoader(x, y, cfg.batch_size, aug=aug or own_aug, seed=cfg.seed, device=device,
                          channels_last=True)


def make_optimizer(params, cfg: TrainConfig, steps_per_epoch: int):
    """SGD with momentum and a per-step schedule: linear warm-up, then cosine decay to 0."""
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=True)
    total, warm = cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train(model, train_set, cfg: TrainConfig, *, test_set=None, out_dir=None,
          resume: bool = False, progress: bool = True) -> list[dict]:
    """Train `model` in place on `train_set` with `cfg.objective`; returns per-epoch history.

    The model stays on its device (move it first). With `out_dir`, the model is saved
    as out_dir/model.pt + model.json at the end and the training state after every
    epoch (out_dir/train_state.pt), so that `resume=True` continues an interrupted run.
    Clean test accuracy is logged each epoch when `test_set` is given.
    """
    if len(train_set) == 0:
        raise ValueError("the training set is empty (check train_n and the dataset's folder)")
    device = next(model.parameters()).device
    loader = fast_setup(model, train_set, cfg) if cfg.fast else None
    loader = loader or D.loader(train_set, cfg.batch_size, train=True, seed=cfg.seed, num_workers=cfg.num_workers)
    step_model = torch.compile(model) if cfg.compile else model
    test_loader = D.loader(test_set, 256, train=False) if test_set is not None else None
    head = ProjectionHead(model.feature_dim, cfg.head_dim).to(device) if cfg.head_dim else None
    params = list(model.parameters()) + (list(head.parameters()) if head else [])
    opt, sched = make_optimizer(params, cfg, len(loader))
    history, start = [], 0
    state_path = Path(out_dir) / "train_state.pt" if out_dir else None
    if resume and state_path and state_path.exists():
        history, start = _load_state(state_path, cfg, model, head, opt, sched)
    eval_cfg = TrainConfig(objective="standard", seed=cfg.seed)
    for epoch in range(start, cfg.epochs):
        loader.generator.manual_seed(cfg.seed * 1000 + epoch)   # same order after a resume
        torch.manual_seed(cfg.seed * 1000 + epoch + 1)          # same random starts
        stats = run_epoch(loader, step_model, cfg, opt, sched, head,
                          desc=f"{cfg.objective} {epoch + 1}/{cfg.epochs}", progress=progress)
        if not math.isfinite(stats["loss"]):
            raise FloatingPointError(
                f"{cfg.objective}: the training loss became {stats['loss']} in epoch {epoch + 1}. "
                f"Lower the learning rate (now {cfg.lr}); the last good state is "
                f"{state_path if state_path and state_path.exists() else 'not saved (no out_dir)'}.")
        row = {"epoch": epoch + 1, "train_loss": stats["loss"], "train_acc": stats["acc"],
               "lr": sched.get_last_lr()[0]}
        if test_loader is not None:
            row["test_acc"] = run_epoch(test_loader, model, eval_cfg, progress=False)["acc"]
        history.append(row)
        if progress:
            tqdm.write(f"{cfg.objective} epoch {epoch + 1}/{cfg.epochs}: " +
                       ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        if state_path:
            _save_state(state_path, cfg, model, head, opt, sched, history)
    model.eval()
    if out_dir:
        save_checkpoint(model, Path(out_dir) / "model.pt", {"train": asdict(cfg), "history": history})
    return history


def get_model(objective: str, data, p: dict, ckpt_root, *, device=None, progress: bool = True,
              **overrides):
    """The model for `objective` under preset `p`: loaded from ckpt_root/<name> if it was trained
    with the same settings, else trained there now. Returns (model, history).

    `overrides` change TrainConfig fields (e.g. lam=0.5); the folder name records them.
    """
    cfg = TrainConfig.from_preset(objective, p, **overrides)
    name = objective + "".join(f"-{k}{v}" for k, v in sorted(overrides.items()))
    device = device or pick_device(verbose=False)
    seed_everything(cfg.seed)
    model = model_for(data, p["arch"]).to(device)
    train_set = D.subset(data.train, p.get("train_n"), cfg.seed)
    return load_or_train(Path(ckpt_root) / name, model, train_set, cfg, progress=progress)


def load_or_train(path, model, train_set, cfg: TrainConfig, *, test_set=None, retrain: bool = False,
                  progress: bool = True):
    """Load the checkpoint at `path` if it was trained with the same `cfg`, else train and save it.

    Notebooks use this to reuse an earlier notebook's model and still run on their own.
    `path` is a folder (model.pt, model.json and train_state.pt go inside). Returns
    (model in eval mode, history).
    """
    path = Path(path)
    meta_path = path / "model.json"
    if not retrain and meta_path.exists():
        meta = _read_meta(meta_path)
        if meta.get("train") == asdict(cfg) and meta.get("model") == getattr(model, "config", None):
            load_checkpoint(path / "model.pt", model, device=next(model.parameters()).device)
            print(f"[clead_edu] loaded {cfg.objective} model from {path}")
            return model, meta.get("history", [])
        print(f"[clead_edu] {path} holds a model trained with other settings; training anew")
    history = train(model, train_set, cfg, test_set=test_set, out_dir=path, resume=not retrain,
                    progress=progress)
    return model, history


# ----------------------------------------------------------------------------- checkpoints

class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, corrupt, unsafe, or for another model."""


def _atomic_write(path: Path, write) -> None:
    """Write via a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(model, path, meta: dict | None = None) -> Path:
    """Save model.state_dict() to `path` and metadata (architecture, sha256...) beside it as .json."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _atomic_write(path, lambda p: torch.save(state, p))
    info = {"model": getattr(model, "config", None), "sha256": sha256(path),
            "torch": torch.__version__, **(meta or {})}
    _atomic_write(path.with_suffix(".json"), lambda p: p.write_text(json.dumps(info, indent=1)))
    return path


def _read_meta(meta_path: Path) -> dict:
    """The JSON metadata beside a checkpoint ({} if absent); CheckpointError if unreadable."""
    if not meta_path.exists():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{meta_path} is not valid JSON ({err}); it should be the metadata "
                              f"written with the checkpoint. Download or train it again.") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path} does not hold checkpoint metadata (a JSON object)")
    return meta


def _torch_load(path: Path):
    """torch.load(weights_only=True) with errors that name the file and say what to do."""
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist. Train the model first "
                              f"(its notebook or `python -m clead_edu run`), or check the path.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        head = path.read_bytes()[:64].lstrip().lower()
        why = ("it is a web page (HTML), not a checkpoint: the download saved an error or "
               "login page" if head.startswith((b"<!doctype", b"<html")) else
               "it holds Python objects or code that safe loading (weights_only=True) refuses"
               if "weights_only" in str(err) or "Unsupported" in str(err) else
               "it is truncated or corrupt")
        raise CheckpointError(f"Cannot load checkpoint {path}: {why} ({type(err).__name__}). "
                              f"Download or train it again; never load untrusted pickles.") from None


def load_checkpoint(path, model=None, device="cpu"):
    """Load a checkpoint written by `save_checkpoint` into `model` (or a model built from its JSON).

    The SHA-256 in the JSON is checked first. Returns the model, in eval mode, on `device`.
    Raises CheckpointError with the file name and a remedy for every failure.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the checkpoint file inside it, "
                              f"e.g. {path / 'model.pt'}")
    meta_path = path.with_suffix(".json")
    meta = _read_meta(meta_path)
    if path.exists() and meta.get("sha256") and sha256(path) != meta["sha256"]:
        raise CheckpointError(f"Checkpoint {path} does not match the SHA-256 in {meta_path}: "
                              f"the file was changed or only partly downloaded. Get it again.")
    state = _torch_load(path)
    if model is None:
        if not meta.get("model"):
            raise CheckpointError(f"{meta_path} is missing, so the architecture of {path} is "
                                  f"unknown; build the model yourself and pass it as `model=`.")
        cfg = meta["model"]
        model = build_model(cfg["arch"], cfg["num_classes"], cfg["in_channels"], cfg["mean"],
                            cfg["std"], **cfg.get("kwargs", {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        theirs, ours = meta.get("model") or {}, getattr(model, "config", {}) or {}
        raise CheckpointError(
            f"Checkpoint {path} does not fit this model: it was saved from "
            f"{theirs.get('arch', 'an unknown architecture')} with "
            f"{theirs.get('num_classes', '?')} classes, the model is {ours.get('arch', type(model).__name__)} "
            f"with {ours.get('num_classes', '?')} classes. Build the matching model, or call "
            f"load_checkpoint(path) without a model to rebuild it from the JSON. "
            f"(First mismatch: {str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err})"
        ) from None
    return model.to(device).eval()


def _save_state(path: Path, cfg: TrainConfig, model, head, opt, sched, history) -> None:
    state = {"cfg": json.dumps(asdict(cfg)), "model": model.state_dict(), "head": head.state_dict() if head else {},
             "opt": opt.state_dict(), "sched": sched.state_dict(),
             "history": json.dumps(history)}
    _atomic_write(path, lambda p: torch.save(state, p))


def _load_state(path: Path, cfg: TrainConfig, model, head, opt, sched) -> tuple[list, int]:
    """Restore an interrupted run; returns (history, epochs done). Ignores a state from other settings."""
    state = _torch_load(path)
    if json.loads(state.get("cfg", "null")) != asdict(cfg):
        print(f"[clead_edu] {path} was written with other settings; not resuming from it")
        return [], 0
    model.load_state_dict(state["model"])
    if head is not None:
        head.load_state_dict(state["head"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    history = json.loads(state["history"])
    print(f"[clead_edu] resuming {cfg.objective} after epoch {len(history)} ({path})")
    return history, len(history)
