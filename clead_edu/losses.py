"""Losses: supervised contrastive (SupCon), the C-LEAD objective, TRADES; and `embed`, the
representation z they compare.

The pure losses only: the named training steps that attack, then call one of these,
are in `objectives.py` (one record per objective).

A defense is a drop-in loss here: each `*_loss(model, x, y, x_adv, ...)` returns a pair
(the loss scalar to minimise, the logits (B, K) the training log scores); `clead_loss` also
fills a dict of its parts when given one. None of them touches an optimiser. The inner losses
(`*_inner`) are what the attack maximises; they follow the attack's `loss_fn`
signature (model, x_adv, y) -> per-example loss (B,), so they plug into
`attacks.pgd(..., loss_fn=...)`.

C-LEAD as implemented here (see design.md; arXiv 2510.27249):

    z(x) = normalize(encoder(x))                      (optionally through a small head)
    inner:  max_d  CE(f(x+d), y) + mu * (1 - cos(z(x), z(x+d)))    ||d||_inf <= eps
    outer:  min_th CE(f(x_adv), y) + lam * SupCon({z(x_i), z(x_adv_i)}, y; tau)

The joint-perturbation arm (`clead_joint`) attacks with the outer loss itself
(`clead_joint_inner`): max_d CE(f(x+d), y) + lam * SupCon({z(x_i), z(x_i+d_i)}, y; tau).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import POSITIVES


# ----------------------------------------------------------------------------- SupCon

def supcon_masks(labels: torch.Tensor, positives: str = "class") -> tuple[torch.Tensor, torch.Tensor]:
    """Which views are positives and which enter the denominator, for 2B views.

    The views are ordered [clean_1..clean_B, adv_1..adv_B], so the twin of view i is
    view (i + B) mod 2B.

    Args:
        labels: (2B,) class of each view (the batch labels repeated twice).
        positives: 'class' - positives are the twin and every other view of the
            same class (Khosla et al. 2020); 'pair' - the twin is the only positive,
            and other same-class views are left out of the denominator too.
    Returns:
        pos (2B, 2B) bool: positives of each anchor (row).
        denom (2B, 2B) bool: the views in each anchor's softmax denominator.
    """
    if positives not in POSITIVES:
        raise ValueError(f"positives must be one of {POSITIVES}, got {positives!r}")
    n = labels.shape[0]
    if n % 2:
        raise ValueError(f"expected 2B views (clean then adversarial), got {n}")
    eye = torch.eye(n, dtype=torch.bool, device=labels.device)
    twin = eye.roll(n // 2, dims=1)
    same = labels[:, None] == labels[None, :]
    if positives == "class":
        return same & ~eye, ~eye
    return twin, (~same | twin)


def supcon_per_anchor(z: torch.Tensor, labels: torch.Tensor, tau: float = 0.1,
                      positives: str = "class") -> torch.Tensor:
    """The SupCon term of each anchor (2B,), taught as a soft-target cross-entropy.

    For each anchor i, the similarities s_ia = z_i . z_a / tau over the views a in
    its denominator set form logits; the target distribution is uniform over the
    anchor's positives P(i). The term of anchor i is the cross-entropy between that
    target and softmax(s_i.):

        l_i = - 1/|P(i)| sum_{p in P(i)} log( exp(s_ip) / sum_{a in A(i)} exp(s_ia) )

    Args:
        z: (2B, D) L2-normalised embeddings, ordered [clean_1..clean_B, adv_1..adv_B].
        labels: (2B,) integer classes.
        tau: temperature (> 0); smaller tau sharpens the softmax.
        positives: 'class' or 'pair' (see `supcon_masks`).
    Returns:
        (2B,) per-anchor terms (0 for an anchor without positives, which 2B twin views never have).
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    pos, denom = supcon_masks(labels, positives)
    logits = (z @ z.T / tau).masked_fill(~denom, float("-inf"))
    log_prob = logits.log_softmax(dim=1)
    target = pos.to(z.dtype) / pos.sum(1, keepdim=True).clamp_min(1)
    return -(target * torch.where(pos, log_prob, torch.zeros_like(log_prob))).sum(1)


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, tau: float = 0.1,
                positives: str = "class") -> torch.Tensor:
    """Supervised contrastive loss over 2B views (Khosla et al. 2020): the mean over anchors
    of `supcon_per_anchor`,  L = mean_i l_i.  z (2B, D), labels (2B,); returns a scalar."""
    per_anchor = supcon_per_anchor(z, labels, tau, positives)
    return per_anchor[supcon_masks(labels, positives)[0].any(1)].mean()


def supcon_bounds(labels: torch.Tensor, positives: str = "class") -> tuple[float, float]:
    """What `supcon_loss` would be for this batch at its two ends, in nats (the yardstick of
    a training log): (uniform, floor).

    uniform: every similarity equal, so each anchor spreads its softmax evenly over its
        denominator set A(i): mean_i ln|A(i)| (ln(2B - 1) with positives='class').
    floor: all of each anchor's mass on its positives, spread evenly: mean_i ln|P(i)|, the
        lowest value the soft-target cross-entropy can take (0 with positives='pair').
    labels (2B,); the mean runs over the anchors with positives, as in `supcon_loss`."""
    pos, denom = supcon_masks(labels, positives)
    has = pos.any(1)
    return (denom[has].sum(1).double().log().mean().item(), pos[has].sum(1).double().log().mean().item())


# ----------------------------------------------------------------------------- C-LEAD

class ProjectionHead(nn.Module):
    """Optional small MLP on top of the features (an ablation; off by default)."""

    def __init__(self, dim_in: int, dim_out: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, dim_in), nn.ReLU(), nn.Linear(dim_in, dim_out))

    def forward(self, h):
        return self.net(h)


def embed(model: nn.Module, x: torch.Tensor, head: nn.Module | None = None,
          head_input: str = "features") -> torch.Tensor:
    """z(x) = normalize(head(model.features(x))): (B, C, H, W) -> (B, D), unit L2 norm.
    head_input "logits": the head reads the classifier's outputs (B, K) instead of the features
    (the released reading's option, `TrainConfig.head_input`)."""
    return normalized(model.features(x) if head_input == "features" else model(x), head)


def normalized(h: torch.Tensor, head: nn.Module | None = None) -> torch.Tensor:
    """The representation of features h (B, D_in): normalize(head(h)), or normalize(h) without
    a head; (B, D) with unit L2 norm (D = the head's output size, or D_in)."""
    return F.normalize(head(h) if head is not None else h, dim=1)


def clead_inner(z_clean: torch.Tensor, mu: float = 0.0, head: nn.Module | None = None):
    """The C-LEAD attack objective, as a `loss_fn` for `attacks.pgd`.

    Returns loss_fn(model, x_adv, y) = CE(f(x_adv), y) + mu * (1 - cos(z_clean, z(x_adv))),
    per example (B,). `z_clean` (B, D) is z(x) computed once before the attack.
    """
    def loss_fn(model, x_adv, y):
        h = model.features(x_adv)
        ce = F.cross_entropy(model.fc(h), y, reduction="none")
        if mu == 0:
            return ce
        z_adv = normalized(h, head)
        return ce + mu * (1 - (z_clean * z_adv).sum(1))
    return loss_fn


@contextmanager
def running_stats_kept(model: nn.Module | None):
    """Forwards inside leave the BatchNorm running statistics of `model` as they were: each
    BatchNorm layer runs with momentum 0 (running = 1 * running + 0 * batch, exactly) and its
    batch count is put back on exit. In train mode BatchNorm still normalises with the batch's
    own statistics. (Copying saved buffers back instead would break the backward pass, which
    keeps the buffers it was given.) `None`: no effect."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if model else []
    saved = [(m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
             for m in layers]
    for m in layers:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            if count is not None:
                with torch.no_grad():
                    m.num_batches_tracked.copy_(count)


def clead_joint_inner(z_clean: torch.Tensor, *, lam: float = 1.0, tau: float = 0.1,
                      positives: str = "class", mu: float = 0.0, head: nn.Module | None = None):
    """The attack objective of `clead_joint`: C-LEAD's outer loss itself, as a `loss_fn` for pgd.

    Returns loss_fn(model, x_adv, y) -> (B,):
        CE(f(x_adv_i), y_i) + mu * (1 - cos(z_clean_i, z(x_adv_i))) + lam * (l_i + l_{i+B}) / 2,
    where l (2B,) are the SupCon terms (`supcon_per_anchor`) of the batch's views [z_clean;
    z(x_adv)] with labels [y; y]. The batch mean of the last term is lam * SupCon, so with
    mu = 0 PGD (which ascends the sum) maximises the very loss the parameters minimise. Every
    adversarial view's term depends on the whole batch (the negatives). z_clean (B, D) is
    fixed, computed once before the attack.
    """
    def loss_fn(model, x_adv, y):
        h = model.features(x_adv)
        z_adv = normalized(h, head)
        loss = F.cross_entropy(model.fc(h), y, reduction="none") + mu * (1 - (z_clean * z_adv).sum(1))
        terms = supcon_per_anchor(torch.cat([z_clean, z_adv]), torch.cat([y, y]), tau, positives)
        return loss + lam * (terms[:len(y)] + terms[len(y):]) / 2
    return loss_fn


def forward_views(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, joint_bn: bool = False,
                  bn_stats_adv_only: bool = False, features: bool = False) -> torch.Tensor:
    """model (or, with features=True, model.features) on the clean and the adversarial views,
    stacked [clean; adv]: (2B, K) logits or (2B, D) features.

    joint_bn=False (default): two forward passes, so in train mode BatchNorm normalises each
    view with its own batch statistics, as the TRADES reference code does. joint_bn=True: one
    pass over the concatenated batch of 2B (both views share the statistics).
    bn_stats_adv_only (separate passes only): the clean pass leaves the model's BatchNorm
    running statistics untouched, so they move with the adversarial view alone, as in PGD-AT."""
    fn = model.features if features else model
    if joint_bn:
        return fn(torch.cat([x, x_adv]))
    with running_stats_kept(model if bn_stats_adv_only else None):
        clean = fn(x)
    return torch.cat([clean, fn(x_adv)])


def clead_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, *,
               lam: float = 1.0, tau: float = 0.1, positives: str = "class",
               head: nn.Module | None = None, joint_bn: bool = False,
               bn_stats_adv_only: bool = False, terms: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """C-LEAD outer objective: CE(f(x_adv), y) + lam * SupCon({z(x), z(x_adv)}, y; tau).

    Args:
        x, x_adv: (B, C, H, W) in [0, 1]; y: (B,) labels.
        lam: weight of the contrastive term.  tau: SupCon temperature.
        positives: 'class' or 'pair'.  head: optional projection head for z.
        joint_bn: one forward pass over both views (else two; see `forward_views`).
        bn_stats_adv_only: the clean pass leaves BatchNorm's running statistics as they were
            (then lam = 0 is PGD-AT exactly).
        terms: a dict to fill with the parts, for the training log (detached scalars): 'ce',
            'supcon' (measured even when lam = 0, without gradient), and the batch's
            'supcon_uniform' and 'supcon_floor' (`supcon_bounds`).
    Returns:
        (loss scalar, logits on x_adv (B, K)).
    """
    h = forward_views(model, x, x_adv, joint_bn, bn_stats_adv_only, features=True)
    logits_adv = model.fc(h[x.shape[0]:])
    loss = ce = F.cross_entropy(logits_adv, y)
    if lam or terms is not None:
        with torch.set_grad_enabled(bool(lam) and torch.is_grad_enabled()):
            z = normalized(h, head)
            contrast = supcon_loss(z, torch.cat([y, y]), tau, positives)
        loss = loss + lam * contrast if lam else loss
        if terms is not None:
            uniform, floor = supcon_bounds(torch.cat([y, y]), positives)
            terms.update(ce=ce.detach(), supcon=contrast.detach(), supcon_uniform=uniform, supcon_floor=floor)
    return loss, logits_adv


def align_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, *,
               lam: float = 1.0, head: nn.Module | None = None, joint_bn: bool = False,
               bn_stats_adv_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The control without negatives: CE(f(x_adv), y) + lam * mean_i (1 - cos(z(x_i), z(x_adv_i))).

    Each clean image is pulled towards its own adversarial twin only; no other image of the
    batch enters the term (no contrast, no classes). The views go through BatchNorm as in
    `clead_loss`. Returns (loss, logits on x_adv (B, K)).
    """
    h = forward_views(model, x, x_adv, joint_bn, bn_stats_adv_only, features=True)
    logits_adv = model.fc(h[x.shape[0]:])
    loss = F.cross_entropy(logits_adv, y)
    if lam:
        z = normalized(h, head)
        z_clean, z_adv = z[:x.shape[0]], z[x.shape[0]:]
        loss = loss + lam * (1 - (z_clean * z_adv).sum(1)).mean()
    return loss, logits_adv


# ----------------------------------------------------------------------------- TRADES

def trades_inner(p_clean: torch.Tensor):
    """TRADES attack objective KL(p_clean || f(x_adv)) per example, as a `loss_fn` for pgd.

    `p_clean` (B, K) are the softmax probabilities on the clean images (detached).
    """
    def loss_fn(model, x_adv, y):
        return F.kl_div(model(x_adv).log_softmax(1), p_clean, reduction="none").sum(1)
    return loss_fn


def trades_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, *,
                beta: float = 6.0, joint_bn: bool = False,
                bn_stats_adv_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """TRADES (Zhang et al., ICML 2019): CE(f(x), y) + beta * KL(f(x) || f(x_adv)).

    Returns (loss scalar, logits on x_adv (B, K)); the KL is averaged over the batch.
    The views are forwarded separately unless joint_bn (see `forward_views`); with
    bn_stats_adv_only the clean pass leaves BatchNorm's running statistics as they were.
    """
    logits = forward_views(model, x, x_adv, joint_bn, bn_stats_adv_only)
    clean, adv = logits[:x.shape[0]], logits[x.shape[0]:]
    kl = F.kl_div(adv.log_softmax(1), clean.softmax(1), reduction="batchmean")
    return F.cross_entropy(clean, y) + beta * kl, adv
