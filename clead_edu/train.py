"""One training loop; the objective is chosen by name (`objectives.OBJECTIVES`).

    cfg = TrainConfig(objective="clead", epochs=10, eps=8/255)
    history = train(model, data.train, cfg, test_set=data.test, out_dir="runs/demo/clead")
    model, history = train_arm(cfg, data, "small_cnn", data.train, "cpu")   # seed, build, start, train, save

Each objective is a short step in `objectives.OBJECTIVES`: the attack (in eval mode,
from `attacks.pgd`) makes x_adv, the loss is computed in train mode. `train` also does
what an objective declares around its step: copy the model it starts from, train its
projection head, run its finishing stage (all through the same epoch loop, `fit`).
With `out_dir`, the training state is written atomically after every epoch
(`checkpoints`), so `resume=True` continues an interrupted run with the same result.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import data as D
from .checkpoints import load_state, save_checkpoint, save_state
from .config import TrainConfig
from .device import pick_precision, seed_everything
from .fast import fast_loader, mixed_precision
from .guards import check_inputs
from .models import model_for
from .objectives import get, make_head, start_of
from .progress import enabled


def run_epoch(loader, model, cfg: TrainConfig, opt=None, sched=None, head=None,
              desc: str = "", progress: bool = True, step=None) -> dict:
    """One pass over `loader`; trains when `opt` is given. Returns {'loss', 'acc'} averages,
    and the average of each part a step reports (its third item, e.g. 'ce' and 'supcon').

    `step`: (model, x, y, cfg, head) -> (loss, logits) or (loss, logits, terms); default the
    step of cfg.objective. The training steps (attack included) run at cfg.precision
    (`fast.mixed_precision`): on the fast path on CUDA under bf16 autocast, or float16
    autocast with a gradient scaler."""
    device = next(model.parameters()).device
    autocast, scaler = mixed_precision(cfg, device, opt)
    step = step or get(cfg.objective).step
    model.train(opt is not None)
    total_loss, correct, seen, parts = torch.zeros((), device=device), torch.zeros((), device=device), 0, {}
    bars = enabled(progress)                  # on a terminal or in a notebook only
    bar = tqdm(loader, desc=desc, leave=False, disable=not bars, dynamic_ncols=True)
    for i, (x, y) in enumerate(bar):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if i == 0:
            check_inputs(x, y, cfg.eps, model=model)
        with torch.set_grad_enabled(opt is not None), autocast:
            loss, logits, *terms = step(model, x, y, cfg, head)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
        total_loss += loss.detach() * len(y)
        for name, value in (terms[0] if terms else {}).items():
            parts[name] = parts.get(name, 0.0) + value * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if bars and i % 10 == 0:
            bar.set_postfix(loss=f"{total_loss.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}")
    return {"loss": total_loss.item() / max(seen, 1), "acc": correct.item() / max(seen, 1)} | {
        name: float(total) / max(seen, 1) for name, total in parts.items()}


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


def make_loader(model, train_set, cfg: TrainConfig):
    """The fast path's on-device loader when cfg.fast (and possible), else a seeded DataLoader."""
    loader = fast_loader(model, train_set, cfg.batch_size, cfg.seed) if cfg.fast else None
    return loader or D.loader(train_set, cfg.batch_size, train=True, seed=cfg.seed, num_workers=cfg.num_workers)


def train(model, train_set, cfg: TrainConfig, *, start=None, test_set=None, out_dir=None,
          resume: bool = False, progress: bool = True, until: int | None = None) -> list[dict]:
    """Train `model` in place on `train_set` with `cfg.objective`; returns per-epoch history.

    The model stays on its device (move it first). `start`: the trained model the arm starts
    from (`objectives.start_of`, e.g. clead_released from standard), copied first.
    After the epochs, the objective's finishing stage runs, if it has one (`Objective.finish`).
    With `out_dir`, the model is saved as out_dir/model.pt + model.json at the end and the
    training state after every epoch (out_dir/train_state.pt), so that `resume=True` continues
    an interrupted run. Clean test accuracy is logged each epoch when `test_set` is given.
    `until`: stop after that many epochs of the schedule (a run in parts: the state is saved
    as after an interruption, nothing is saved as finished, and the finishing stage waits).
    """
    if len(train_set) == 0:
        raise ValueError("the training set is empty (check train_n and the dataset's folder)")
    get(cfg.objective)                     # ValueError for an unknown objective, before anything runs
    if start is not None:
        model.load_state_dict(start.state_dict())
    loader = make_loader(model, train_set, cfg)
    head = make_head(model, cfg)
    head = head.to(next(model.parameters()).device) if head is not None else None
    params = list(model.parameters()) + (list(head.parameters()) if head else [])
    state_path = Path(out_dir) / "train_state.pt" if out_dir else None
    history = fit(model, loader, cfg, params, get(cfg.objective).step, head=head, test_set=test_set,
                  state_path=state_path, resume=resume, progress=progress, until=until)
    if until is not None and until < cfg.epochs:
        model.eval()
        return history
    history += finish(model, train_set, cfg, test_set=test_set, progress=progress)
    model.eval()
    if out_dir:
        precision = pick_precision(cfg.precision, next(model.parameters()).device, cfg.fast)
        save_checkpoint(model, Path(out_dir) / "model.pt", {"train": asdict(cfg), "history": history,
                                                            "precision": precision})
    return history


def train_arm(cfg: TrainConfig, data, arch: str, train_set, device, *, start_from=None, out_dir=None,
              resume: bool = False, progress: bool = True, test_set=None, until: int | None = None):
    """One arm, the way every command trains it: seed with cfg.seed, build `arch` for `data`
    (`models.model_for`) on `device`, copy the trained model it starts from (`start_from(name)`
    returns it, for the objective `objectives.start_of(cfg)` names), `train`, save in `out_dir`.
    Returns (model in eval mode, history)."""
    seed_everything(cfg.seed)
    model = model_for(data, arch).to(device)
    source = start_of(cfg)
    if source and start_from is None:
        raise ValueError(f"{cfg.objective} starts from a trained {source} model; pass start_from")
    start = start_from(source) if source else None
    history = train(model, train_set, cfg, start=start, out_dir=out_dir, resume=resume, progress=progress,
                    test_set=test_set, until=until)
    return model, history


def fit(model, loader, cfg: TrainConfig, params, step, *, head=None, stage: str | None = None,
        test_set=None, state_path=None, resume: bool = False, progress: bool = True,
        until: int | None = None) -> list[dict]:
    """The epoch loop: cfg.epochs passes of `step` over `loader`, SGD on `params` (the rest of
    the model is not updated), seeded per epoch; returns the history rows (with `stage` in
    each when given). With `state_path`, the state is saved after every epoch and `resume`
    continues from it. `until`: stop after that many epochs (the learning-rate schedule is
    still the one of cfg.epochs)."""
    step_model = torch.compile(model) if cfg.compile else model
    opt, sched = make_optimizer(params, cfg, len(loader))
    history, first = [], 0
    if resume and state_path and state_path.exists():
        history, first = load_state(state_path, cfg, model, head, opt, sched)
    name = f"{cfg.objective} {stage}" if stage else cfg.objective
    for epoch in range(first, cfg.epochs if until is None else min(until, cfg.epochs)):
        t0 = time.time()
        loader.generator.manual_seed(cfg.seed * 1000 + epoch)   # same order after a resume
        torch.manual_seed(cfg.seed * 1000 + epoch + 1)          # same random starts
        epoch_cfg = replace(cfg, lam=lam_at(cfg, epoch))        # the objective reads lam from its cfg
        stats = run_epoch(loader, step_model, epoch_cfg, opt, sched, head, step=step,
                          desc=f"{name} {epoch + 1}/{cfg.epochs}", progress=progress)
        check_finite(stats["loss"], cfg, epoch, state_path)
        history.append(epoch_row(epoch, stats, sched, model, test_set, epoch_cfg, stage)
                       | {"seconds": round(time.time() - t0, 2)})   # kept through a resume
        if progress:
            left = f" (about {(cfg.epochs - epoch - 1) * (time.time() - t0):.0f} s left)" if epoch == first else ""
            tqdm.write(f"{name} epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(
                f"{k} {v:.4g}" for k, v in history[-1].items() if k not in ("epoch", "stage")) + left)
        if state_path:
            save_state(state_path, cfg, model, head, opt, sched, history)
    return history


def finish(model, train_set, cfg: TrainConfig, *, test_set=None, progress: bool = True) -> list[dict]:
    """The finishing stage of cfg.objective (`Objective.finish`, e.g. clead_released's new
    classifier on the frozen features) through the same epoch loop; its history rows, or []
    for an objective without one."""
    prepare = get(cfg.objective).finish
    if prepare is None:
        return []
    stage, step, params = prepare(model, cfg)
    return fit(model, make_loader(model, train_set, cfg), cfg, params, step, stage=stage,
               test_set=test_set, progress=progress)


def lam_at(cfg: TrainConfig, epoch: int) -> float:
    """lam in epoch `epoch` (0-based): cfg.lam * epoch / lam_ramp during the first lam_ramp
    epochs (0 in the first), then cfg.lam; cfg.lam throughout when lam_ramp is 0."""
    return cfg.lam * min(1.0, epoch / cfg.lam_ramp) if cfg.lam_ramp else cfg.lam


def epoch_row(epoch: int, stats: dict, sched, model, test_set, cfg: TrainConfig, stage: str | None = None) -> dict:
    """The history row of one epoch (with its stage when given, the epoch's lam when it ramps,
    the step's parts as train_<name>, e.g. train_supcon); clean test accuracy when a test set
    is given."""
    row = {"epoch": epoch + 1} | ({"stage": stage} if stage else {}) | {
        "train_loss": stats["loss"], "train_acc": stats["acc"], "lr": sched.get_last_lr()[0]} | (
        {"lam": cfg.lam} if cfg.lam_ramp else {}) | {
        f"train_{k}": v for k, v in stats.items() if k not in ("loss", "acc")}
    if test_set is not None:
        test_cfg = TrainConfig(seed=cfg.seed)          # the default objective: clean cross-entropy
        row["test_acc"] = run_epoch(D.loader(test_set, 256, train=False), model, test_cfg, progress=False)["acc"]
    return row


def check_finite(loss: float, cfg: TrainConfig, epoch: int, state_path) -> None:
    """FloatingPointError naming the epoch, the learning rate and the last good state if loss is NaN/inf."""
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"{cfg.objective}: the training loss became {loss} in epoch {epoch + 1}. "
            f"Lower the learning rate (now {cfg.lr}); the last good state is "
            f"{state_path if state_path and state_path.exists() else 'not saved (no out_dir)'}.")
