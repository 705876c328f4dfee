"""Checkpoints: plain state_dicts plus a small JSON of metadata, written atomically.

    save_checkpoint(model, "runs/x/clead/model.pt", {"train": asdict(cfg)})   # + model.json
    model = load_checkpoint("runs/x/clead/model.pt")      # rebuilt from model.json, eval mode

Loading uses `torch.load(..., weights_only=True)` (never unpickles code) and checks the
SHA-256 recorded in the JSON; every failure is a `CheckpointError` naming the file and
saying what to do. `save_state`/`load_state` hold an interrupted run's training state.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from .config import OLD_SETTINGS, TRAIN_FIELDS
from .fast import restore_scaler, scaler_state
from .models import build_model


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, corrupt, unsafe, or for another model."""


def atomic_write(path: Path, write) -> None:
    """Write via a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def sha256(path: Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(model, path, meta: dict | None = None) -> Path:
    """Save model.state_dict() to `path` and metadata (architecture, sha256...) beside it as .json."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: torch.save(state, p))
    info = {"model": getattr(model, "config", None), "sha256": sha256(path),
            "torch": torch.__version__, **(meta or {})}
    atomic_write(path.with_suffix(".json"), lambda p: p.write_text(json.dumps(info, indent=1)))
    return path


def read_meta(meta_path: Path) -> dict:
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
    meta = read_meta(meta_path)
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


def save_state(path: Path, cfg, model, head, opt, sched, history) -> None:
    """Everything an interrupted run needs to continue as if it had not stopped: settings,
    weights, optimizer, schedule, float16 gradient scaler and the history rows so far."""
    state = {"cfg": json.dumps(asdict(cfg)), "model": model.state_dict(), "head": head.state_dict() if head else {},
             "opt": opt.state_dict(), "sched": sched.state_dict(), "scaler": scaler_state(opt),
             "history": json.dumps(history)}
    atomic_write(path, lambda p: torch.save(state, p))


def load_state(path: Path, cfg, model, head, opt, sched) -> tuple[list, int]:
    """Restore an interrupted run; returns (history, epochs done). Ignores a state from other settings."""
    state = _torch_load(path)
    if with_defaults(json.loads(state.get("cfg", "null"))) != asdict(cfg):
        print(f"[clead_edu] {path} was written with other settings; not resuming from it")
        return [], 0
    model.load_state_dict(state["model"])
    if head is not None:
        head.load_state_dict(state["head"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    restore_scaler(opt, cfg, next(model.parameters()).device, state.get("scaler", {}))
    history = json.loads(state["history"])
    print(f"[clead_edu] resuming {cfg.objective} after epoch {len(history)} ({path})")
    return history, len(history)


def with_defaults(train: dict | None) -> dict | None:
    """Recorded training settings as today's names spell them (`config.OLD_SETTINGS`), with every
    setting added since they were written at its default (a model trained before `precision`
    existed was trained at its default, 'auto')."""
    if not isinstance(train, dict):
        return None
    return {**TRAIN_FIELDS, **{OLD_SETTINGS.get(k, k): v for k, v in train.items()}}


def find_checkpoint(folders, train: dict, model_config: dict | None) -> Path | None:
    """The first `model.pt` in `folders` (each a checkpoint folder, or a runs/ folder whose
    sub-folders are searched two levels deep) whose JSON records exactly these training
    settings (asdict(TrainConfig); a setting its JSON lacks counts as its default, so a model
    saved before the setting existed still matches) and this architecture; None if there is none."""
    for folder in map(Path, folders):
        for meta_path in [folder / "model.json", *sorted(folder.glob("*/*/model.json"))]:
            if meta_path.is_file() and (meta_path.with_suffix(".pt")).is_file():
                meta = read_meta(meta_path)
                if with_defaults(meta.get("train")) == train and meta.get("model") == model_config:
                    return meta_path.with_suffix(".pt")
    return None
