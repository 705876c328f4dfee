"""The training objectives by name: each is a short step, attack then loss.

    step = OBJECTIVES["clead"].step
    loss, logits = step(model, x, y, cfg, head)      # cfg: a TrainConfig

A step takes a batch x (B, C, H, W) in [0, 1] with labels y (B,), makes its adversarial
examples (the attack runs in eval mode, from `attacks.pgd`), and returns the scalar loss
to minimise and the logits the training log scores (B, K), optionally with a third item,
a dict of named parts for the log (`clead`: its cross-entropy and contrastive term, with
the term's yardsticks); the losses themselves are
in `losses.py` (and `released.py` for the authors' released reading). Besides its step,
an objective may declare what the training loop does around it (`Objective`): a
projection head trained beside the model, the trained model it starts from, and a
finishing stage after its epochs. The names are `config.OBJECTIVES`; `check_registry`
makes sure each has exactly one entry here.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config
from . import released as R
from .attacks import eval_mode, pgd
from .losses import (ProjectionHead, align_loss, clead_inner, clead_joint_inner, clead_loss, embed, trades_inner,
                     trades_loss)

TRADES_START = 0.001      # the TRADES reference's inner start: x + 0.001 * N(0, 1)

Step = Callable[..., "tuple[torch.Tensor, torch.Tensor]"]


@dataclass(frozen=True)
class Objective:
    """One training objective: its step, and what the training loop does around it.

    step: (model, x, y, cfg, head) -> (loss, logits) or (loss, logits, terms), terms a dict
        {name: scalar} of parts the training log averages over the epoch.
    head: (model, cfg) -> the module trained beside the model, or None; None here means
        the default (`make_head`: C-LEAD's optional MLP head when cfg.head_dim > 0).
    starts_from: the objective whose trained model this one starts from (its weights are
        copied first; `pipeline.run` and `Lesson.model` provide it), or None (from scratch).
    finish: (model, cfg) -> (stage name, step, parameters): a stage `train.train` runs for
        cfg.epochs epochs after the objective's own, training only those parameters.
    """
    step: Step
    head: Callable | None = None
    starts_from: str | None = None
    finish: Callable | None = None


OBJECTIVES: dict[str, Objective] = {}


def objective(name: str, **around):
    """Register `fn(model, x, y, cfg, head) -> (loss, logits)` as the step of objective `name`;
    `around`: the other fields of `Objective` (head, starts_from, finish)."""
    def register(fn: Step) -> Step:
        OBJECTIVES[name] = Objective(fn, **around)
        return fn
    return register


def make_head(model: nn.Module, cfg) -> nn.Module | None:
    """The projection head of cfg.objective: its own (`Objective.head`), else
    ProjectionHead(model.feature_dim -> cfg.head_dim) when cfg.head_dim > 0, else None."""
    own = OBJECTIVES[cfg.objective].head
    if own is not None:
        return own(model, cfg)
    return ProjectionHead(model.feature_dim, cfg.head_dim) if cfg.head_dim else None


def attack_budget(cfg) -> dict:
    """The training attack's budget from a TrainConfig, as `attacks.pgd` keywords (pixel units;
    the inputs are checked once per epoch by the training loop, not at every step)."""
    return dict(eps=cfg.eps, alpha=cfg.alpha, steps=cfg.train_steps, validate=False)


# ----------------------------------------------------------------------------- the steps

@objective("standard")
def standard(model, x, y, cfg, head=None):
    """Cross-entropy on the clean images. Returns (loss, logits on x)."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


@objective("fgsm_at")
def fgsm_at(model, x, y, cfg, head=None):
    """"Fast is better than free" (Wong et al. 2020): one step of 1.25 eps from a random start."""
    x_adv = pgd(model, x, y, eps=cfg.eps, alpha=1.25 * cfg.eps, steps=1, validate=False)
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


@objective("pgd_at")
def pgd_at(model, x, y, cfg, head=None):
    """PGD-AT (Madry et al. 2018): cross-entropy on PGD examples. Returns (loss, logits on x_adv)."""
    x_adv = pgd(model, x, y, **attack_budget(cfg))
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


@objective("trades")
def trades(model, x, y, cfg, head=None):
    """TRADES (Zhang et al. 2019): the attack maximises KL to the clean prediction, starting
    at x + 0.001 N(0, 1) as the reference code does."""
    with torch.no_grad(), eval_mode(model):
        p_clean = model(x).softmax(1)
    x_adv = pgd(model, x, y, loss_fn=trades_inner(p_clean), random_start=TRADES_START, **attack_budget(cfg))
    return trades_loss(model, x, y, x_adv, beta=cfg.beta, joint_bn=cfg.joint_bn,
                       bn_stats_adv_only=cfg.bn_stats_adv_only)


def clead_attack(model, x, y, cfg, head=None) -> torch.Tensor:
    """C-LEAD's inner maximisation (shared by `clead` and the `align` control): PGD on
    `clead_inner` from the clean representation, model in eval mode. x_adv (B, C, H, W)."""
    with torch.no_grad(), eval_mode(model):
        z_clean = embed(model, x, head)
    return pgd(model, x, y, loss_fn=clead_inner(z_clean, cfg.mu, head), **attack_budget(cfg))


@objective("clead")
def clead(model, x, y, cfg, head=None):
    """C-LEAD: perturb to break the prediction (and, with mu > 0, the representation), then
    pull each clean image and its adversarial twin together. Returns (loss, logits on x_adv, terms)."""
    x_adv = clead_attack(model, x, y, cfg, head)
    return clead_outer(model, x, y, x_adv, cfg, head)


def clead_outer(model, x, y, x_adv, cfg, head=None):
    """`losses.clead_loss` with cfg's knobs; returns (loss, logits on x_adv, terms), the terms
    being its parts for the training log (cross-entropy, SupCon and SupCon's yardsticks)."""
    terms = {}
    loss, logits = clead_loss(model, x, y, x_adv, lam=cfg.lam, tau=cfg.tau, positives=cfg.positives, head=head,
                              joint_bn=cfg.joint_bn, bn_stats_adv_only=cfg.bn_stats_adv_only, terms=terms)
    return loss, logits, terms


@objective("align")
def align(model, x, y, cfg, head=None):
    """Control: C-LEAD's attack and cross-entropy, but the contrastive term replaced by pair-only
    cosine alignment (no negatives), weight lam. Returns (loss, logits on x_adv)."""
    x_adv = clead_attack(model, x, y, cfg, head)
    return align_loss(model, x, y, x_adv, lam=cfg.lam, head=head, joint_bn=cfg.joint_bn,
                      bn_stats_adv_only=cfg.bn_stats_adv_only)


@objective("clead_lam0")
def clead_lam0(model, x, y, cfg, head=None):
    """Control: C-LEAD with lam = 0, whatever cfg.lam says: C-LEAD's attack and its BatchNorm
    handling (the clean view is forwarded too), no contrastive term. C-LEAD minus this control
    is the contrastive term's effect; with cfg.bn_stats_adv_only it is PGD-AT exactly."""
    return clead(model, x, y, replace(cfg, lam=0.0), head)


@objective("clead_joint")
def clead_joint(model, x, y, cfg, head=None):
    """C-LEAD with the contrastive term in the perturbation too: the attack maximises
    CE(f(x_adv), y) + lam * SupCon({z(x), z(x_adv)}, y; tau) (+ mu * (1 - cos), as in `clead`),
    the batch's outer loss itself (`losses.clead_joint_inner`), with z(x) fixed and the model in
    eval mode; then the model minimises that loss (`clead_loss`). Returns (loss, logits on x_adv, terms)."""
    with torch.no_grad(), eval_mode(model):
        z_clean = embed(model, x, head)
    inner = clead_joint_inner(z_clean, lam=cfg.lam, tau=cfg.tau, positives=cfg.positives, mu=cfg.mu, head=head)
    x_adv = pgd(model, x, y, loss_fn=inner, **attack_budget(cfg))
    return clead_outer(model, x, y, x_adv, cfg, head)


def clead_released(model, x, y, cfg, head=None):
    """The authors' released reading (`released.py`): from a trained model, the three-view
    label-free loss on (anchor, augmented, adversarial) with a linear head; then a new classifier
    on the frozen features. Returns (loss, logits of the anchors, for the log only)."""
    reads = cfg.released_head_input
    views = R.three_views(model, head, x, reads, **attack_budget(cfg))
    z, logits = R.forward_three(model, head, views, reads)      # one batch of 3B, as released
    return R.released_loss(z), logits


# The released reading, bracketed (neither its start nor its classifier is released):
# name, the trained model it starts from, the probe of its classifier stage.
RELEASED_ARMS = (("clead_released", "standard", "clean"), ("clead_released_at", "pgd_at", "clean"),
                 ("clead_released_advprobe", "standard", "adversarial"),
                 ("clead_released_at_advprobe", "pgd_at", "adversarial"))
for _name, _start, _probe in RELEASED_ARMS:
    objective(_name, head=R.linear_head, starts_from=_start, finish=partial(R.new_classifier, probe=_probe))(
        clead_released)


def check_registry(registry: dict = OBJECTIVES, names: tuple = config.OBJECTIVES) -> None:
    """RuntimeError unless `registry` has exactly one entry per name in `names` (config's list,
    which validates TrainConfig.objective) and each starts_from names a registered objective."""
    missing, extra = set(names) - set(registry), set(registry) - set(names)
    sources = {o.starts_from for o in registry.values()} - {None} - set(registry)
    if missing or extra or sources:
        raise RuntimeError(f"the objectives registry and config.OBJECTIVES differ: without a step "
                           f"{sorted(missing)}, not in config.OBJECTIVES {sorted(extra)}, unknown "
                           f"starts_from {sorted(sources)}")


check_registry()
