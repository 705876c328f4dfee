"""The training objectives by name, one record each: the step (attack, then loss) and what
the rest of the package needs to know about it.

    OBJECTIVES["clead"].step(model, x, y, cfg, head)   # -> (loss, logits) or (loss, logits, terms)
    get("clead").label                                 # 'C-LEAD'
    arm("clead[lam=0]")                                # ('clead', {'lam': 0.0}): an objective and its changes

A step takes a batch x (B, C, H, W) in [0, 1] with labels y (B,), makes its adversarial
examples (the attack runs in eval mode, from `attacks.pgd`), and returns the scalar loss
to minimise and the logits the training log scores (B, K), optionally with a third item,
a dict of named parts for the log (`clead`: its cross-entropy and contrastive term, with
the term's yardsticks); the losses themselves are in `losses.py` (and `released.py` for
the authors' released reading). The record (`Objective`) also holds the report's label,
the arms it is paired against in a study, whether the main job draws its figures, its cost
for the pretrained bundle's order, the settings it reads, and what the training loop does
around the step: a projection head trained beside the model, the trained model it starts
from, and a finishing stage after its epochs. A new defense is one `@objective(...)`
(docs/your_own_defense.md).

An arm is an objective with changed settings, spelled `objective[name=value,...]`
(`config.parse_arm`); `OLD_NAMES` maps the objective names of published results that are
arms now (`clead_lam0` is `clead[lam=0]`).
"""
from __future__ import annotations

from dataclasses import dataclass
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

# The settings every objective's training reads (the loop, the schedule, the training attack);
# an arm may change these and the ones its objective's record lists in `reads`.
LOOP_SETTINGS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "warmup_epochs", "eps", "alpha",
                 "train_steps", "seed", "num_workers", "fast", "compile", "start")


@dataclass(frozen=True)
class Objective:
    """One training objective: its step, what the reports say of it, and what the training
    loop does around it.

    step: (model, x, y, cfg, head) -> (loss, logits) or (loss, logits, terms), terms a dict
        {name: scalar} of parts the training log averages over the epoch.
    label: its name in reports, tables and figures ('C-LEAD').
    paired: the arms a study subtracts from it, seed by seed (its references, e.g. 'pgd_at').
    figures: the main job draws its adversarial examples and its UMAP panel.
    cost: rough cost of one epoch, relative to standard training (orders the bundle's build).
    reads: the settings of TrainConfig its step reads besides `LOOP_SETTINGS`.
    head: (model, cfg) -> the module trained beside the model, or None; None here means
        the default (`make_head`: C-LEAD's optional MLP head when cfg.head_dim > 0).
    starts_from: the objective whose trained model this one starts from unless cfg.start
        names another (its weights are copied first), or None (from scratch).
    finish: (model, cfg) -> (stage name, step, parameters): a stage `train.train` runs for
        cfg.epochs epochs after the objective's own, training only those parameters.
    """
    step: Step
    label: str
    paired: tuple[str, ...] = ()
    figures: bool = False
    cost: float = 5.0
    reads: tuple[str, ...] = ()
    head: Callable | None = None
    starts_from: str | None = None
    finish: Callable | None = None


OBJECTIVES: dict[str, Objective] = {}

# Objective names of results published before they became arms -> the arm (`published` files).
OLD_NAMES = {"clead_lam0": "clead[lam=0]", "clead_released_at": "clead_released[start=pgd_at]",
             "clead_released_advprobe": "clead_released[probe=adversarial]",
             "clead_released_at_advprobe": "clead_released[start=pgd_at,probe=adversarial]"}


def objective(name: str, label: str, **record):
    """Register `fn(model, x, y, cfg, head) -> (loss, logits)` as the step of objective `name`;
    `record`: the other fields of `Objective` (paired, figures, cost, reads, head, ...)."""
    def register(fn: Step) -> Step:
        OBJECTIVES[name] = Objective(fn, label, **record)
        return fn
    return register


def get(name: str) -> Objective:
    """The record of objective `name`; ValueError listing the registered names otherwise."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def arm(text: str) -> tuple[str, dict]:
    """`config.parse_arm`, with the objective looked up and every changed setting one it reads:
    'clead[lam=0]' -> ('clead', {'lam': 0.0}); ValueError naming what is wrong."""
    name, changes = config.parse_arm(text)
    unread = [k for k in changes if k not in LOOP_SETTINGS + get(name).reads]
    if unread:
        raise ValueError(f"{name} does not read {', '.join(unread)} (arm {text!r}); it reads "
                         f"{', '.join(get(name).reads) or 'only the loop settings'} besides {', '.join(LOOP_SETTINGS)}")
    return name, changes


def arm_key(text: str) -> str:
    """The one spelling of an arm (checked): 'clead[lam=0.0]' -> 'clead[lam=0]'."""
    return config.arm_name(*arm(text))


def label(text: str) -> str:
    """An arm's name in reports: its objective's label, with the changes: 'C-LEAD [lam=0]'."""
    name, changes = config.parse_arm(OLD_NAMES.get(text, text))
    inside = config.arm_name(name, changes)[len(name):]
    return get(name).label + (f" {inside}" if inside else "")


def start_of(cfg) -> str | None:
    """The objective whose trained model cfg's arm starts from: cfg.start, else its record's."""
    return cfg.start or get(cfg.objective).starts_from


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

@objective("standard", "Standard", figures=True, cost=1)
def standard(model, x, y, cfg, head=None):
    """Cross-entropy on the clean images. Returns (loss, logits on x)."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


@objective("fgsm_at", "FGSM-AT", cost=1.5)
def fgsm_at(model, x, y, cfg, head=None):
    """"Fast is better than free" (Wong et al. 2020): one step of 1.25 eps from a random start."""
    x_adv = pgd(model, x, y, eps=cfg.eps, alpha=1.25 * cfg.eps, steps=1, validate=False)
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


@objective("pgd_at", "PGD-AT", figures=True, cost=3)
def pgd_at(model, x, y, cfg, head=None):
    """PGD-AT (Madry et al. 2018): cross-entropy on PGD examples. Returns (loss, logits on x_adv)."""
    x_adv = pgd(model, x, y, **attack_budget(cfg))
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


@objective("trades", "TRADES", paired=("pgd_at",), cost=4, reads=("beta", "joint_bn", "bn_stats_adv_only"))
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


CLEAD_READS = ("lam", "lam_ramp", "tau", "mu", "positives", "head_dim", "joint_bn", "bn_stats_adv_only")
CONTROL = "clead[lam=0]"   # C-LEAD without the contrastive term: C-LEAD minus it is the term's effect


@objective("clead", "C-LEAD", paired=("pgd_at", CONTROL), figures=True, cost=5, reads=CLEAD_READS)
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


@objective("align", "Align (control)", paired=("pgd_at",), cost=5,
           reads=("lam", "lam_ramp", "mu", "head_dim", "joint_bn", "bn_stats_adv_only"))
def align(model, x, y, cfg, head=None):
    """Control: C-LEAD's attack and cross-entropy, but the contrastive term replaced by pair-only
    cosine alignment (no negatives), weight lam. Returns (loss, logits on x_adv)."""
    x_adv = clead_attack(model, x, y, cfg, head)
    return align_loss(model, x, y, x_adv, lam=cfg.lam, head=head, joint_bn=cfg.joint_bn,
                      bn_stats_adv_only=cfg.bn_stats_adv_only)


@objective("clead_joint", "C-LEAD joint perturbation", paired=("pgd_at", CONTROL), cost=6, reads=CLEAD_READS)
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


@objective("clead_released", "C-LEAD (released code)", paired=("pgd_at",), cost=4,
           reads=("head_input", "probe"), head=R.linear_head, starts_from="standard",
           finish=R.new_classifier)
def clead_released(model, x, y, cfg, head=None):
    """The authors' released reading (`released.py`): from a trained model (cfg.start, default
    the standard one), the three-view label-free loss on (anchor, augmented, adversarial) with a
    linear head; then a new classifier on the frozen features (cfg.probe: trained on clean or on
    adversarial images). Returns (loss, logits of the anchors, for the log only)."""
    head_input = cfg.head_input
    views = R.three_views(model, head, x, head_input, **attack_budget(cfg))
    z, logits = R.forward_three(model, head, views, head_input)      # one batch of 3B, as released
    return R.released_loss(z), logits


def check_registry(registry: dict = OBJECTIVES) -> None:
    """RuntimeError unless each record's starts_from and paired references name registered
    objectives (an arm's objective, for a paired arm) and its reads are TrainConfig fields."""
    known = set(registry)
    sources = {o.starts_from for o in registry.values()} - {None} - known
    refs = {r for o in registry.values() for r in o.paired if config.parse_arm(r)[0] not in known}
    reads = {r for o in registry.values() for r in o.reads} - set(config.TRAIN_FIELDS)
    if sources or refs or reads:
        raise RuntimeError(f"the objectives registry names what it does not hold: starts_from {sorted(sources)}, "
                           f"paired {sorted(refs)}, reads {sorted(reads)}")


check_registry()
