"""Adversarial attacks as plain functions: attack(model, x, y, *, eps, ...) -> x_adv.

Contract shared by every attack here:

- x is a float tensor (B, C, H, W) with values in [0, 1]; y holds labels (B,)
  (for a targeted attack, the *target* labels).
- eps is in pixel units: 8/255 for L-inf on CIFAR, not 8 and not a normalised value.
- x_adv is detached, inside [0, 1] and inside the eps-ball around x.
- the model runs in eval mode during the attack (BatchNorm uses running
  statistics, dropout is off); each module's train/eval mode is restored after.
- input gradients come from `torch.autograd.grad`, so no gradient is ever left
  on the model's parameters.

The input checks (eps in 0-255 units, x outside [0, 1], probabilities instead of
logits, ...) live in `guards.py`; each attack calls `guards.check_attack` once.

Example::

    x_adv = pgd(model, x, y, eps=8/255, alpha=2/255, steps=10)
    robust_acc = (model(x_adv).argmax(1) == y).float().mean()
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn.functional as F

from .guards import check_attack

LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Put every module in eval mode; restore each module's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.train(was_training)


def ce_loss(model: torch.nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy of the model at x_adv, shape (B,)."""
    return F.cross_entropy(model(x_adv), y, reduction="none")


def input_grad(model, loss_fn: LossFn, x_adv, y, targeted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed loss w.r.t. x_adv only (ascent direction), and the loss (B,)."""
    x_adv = x_adv.detach().requires_grad_(True)
    loss = loss_fn(model, x_adv, y)
    (grad,) = torch.autograd.grad(loss.sum(), x_adv)
    return (-grad if targeted else grad), loss.detach()


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
         targeted: bool = False, loss_fn: LossFn = ce_loss) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, ICLR 2015).

    Threat model: L-inf ball of radius eps (pixel units, e.g. 8/255), white box.
    One step: x_adv = clip_[0,1](x + eps * sign(grad_x loss(f(x), y))).

    Args: as `pgd` (model, x (B, C, H, W) in [0, 1], y (B,), eps in pixel units, targeted, loss_fn).
    Returns: x_adv (B, C, H, W), detached, in [0, 1], with ||x_adv - x||_inf <= eps.
    """
    with eval_mode(model):
        check_attack(model, x, y, eps=eps, norm="linf")
        if len(x) == 0:
            return x.detach().clone()
        grad, _ = input_grad(model, loss_fn, x, y, targeted)
        return (x + eps * grad.sign()).clamp(0, 1).detach()


# ----------------------------------------------------------------------------- PGD

def project(delta: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """delta moved back onto the eps-ball (L-inf: clip; L2: rescale) and x + delta into [0, 1]."""
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        d_norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * (eps / d_norm.clamp_min(1e-12)).clamp(max=1.0)
    return (x + delta).clamp(0, 1) - x


def random_delta(x: torch.Tensor, eps: float, norm: str, scale: float | None = None) -> torch.Tensor:
    """A random start: uniform in the L-inf cube, or uniform radius along a random L2 direction;
    with `scale`, Gaussian noise scale * N(0, 1) instead (the TRADES start: 0.001)."""
    if scale is not None:
        delta = scale * torch.randn_like(x)
    elif norm == "linf":
        delta = torch.empty_like(x).uniform_(-eps, eps)
    else:
        direction = torch.randn_like(x)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = direction * eps * torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)
    return project(delta, x, eps, norm)


def step_and_project(delta, grad, x, eps: float, alpha: float, norm: str) -> torch.Tensor:
    """One ascent step of size alpha (the gradient's sign for L-inf, its unit vector for L2), projected."""
    step = grad.sign() if norm == "linf" else grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return project(delta + alpha * step, x, eps, norm)


def pgd_once(model, x, y, eps, alpha, steps, norm, random_start, targeted, loss_fn):
    """One PGD run from one start; returns x_adv (B,C,H,W)."""
    scale = None if isinstance(random_start, bool) else float(random_start)
    delta = random_delta(x, eps, norm, scale) if random_start is not False else torch.zeros_like(x)
    for _ in range(steps):
        grad, _ = input_grad(model, loss_fn, x + delta, y, targeted)
        delta = step_and_project(delta, grad, x, eps, alpha, norm)
    return (x + delta).detach()


def _judge(model, x_adv, y, targeted: bool, loss_fn: LossFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: did x_adv fool the model (B,) bool, and how strong is it (B,) (higher = stronger)."""
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
        loss = loss_fn(model, x_adv, y)
    return (pred == y if targeted else pred != y), (-loss if targeted else loss)


def pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
        alpha: float | None = None, steps: int = 10, norm: str = "linf",
        random_start: bool | float = True, restarts: int = 1, targeted: bool = False,
        loss_fn: LossFn = ce_loss, validate: bool = True) -> torch.Tensor:
    """Projected Gradient Descent (Madry et al., ICLR 2018), L-inf or L2.

    Threat model: the L-inf (or L2) ball of radius eps around x, intersected with
    [0,1], white box. Each step ascends the loss (sign of the gradient for L-inf,
    the unit-norm gradient for L2) by alpha and projects back onto the ball.

    Args:
        model: returns logits (B, K) for x.  x: clean images (B, C, H, W) in [0, 1].
        y: labels (B,), or the target labels if targeted.
        eps: radius in pixel units (L-inf: e.g. 8/255; L2: e.g. 0.5).  norm: 'linf' or 'l2'.
        alpha: step size in the same units; default 2.5 * eps / steps.  steps: per restart.
        random_start: True: a uniformly random point of the ball; False: x; a number s:
            x + s * N(0, 1) (TRADES starts at s = 0.001).
        restarts: independent runs; each example keeps its strongest result
            (one that fools the model, else the highest final loss).
        targeted: make the model predict y (the target labels) instead of leaving y.
        loss_fn: per-example loss (model, x_adv, y) -> (B,) to ascend; default cross-entropy
            (C-LEAD and TRADES pass their own inner losses).
        validate: run `guards.check_attack` first (the training loop checks once per epoch).
    Returns: x_adv (B, C, H, W), detached, in [0, 1], within eps of x in the chosen norm.
    """
    with eval_mode(model):
        if validate:
            check_attack(model, x, y, eps=eps, norm=norm, alpha=alpha, steps=steps, restarts=restarts)
        x, alpha = x.detach(), 2.5 * eps / max(steps, 1) if alpha is None else alpha
        if len(x) == 0:
            return x.clone()
        best = pgd_once(model, x, y, eps, alpha, steps, norm, random_start, targeted, loss_fn)
        if restarts == 1:
            return best
        best_fooled, best_score = _judge(model, best, y, targeted, loss_fn)
        for _ in range(restarts - 1):
            cand = pgd_once(model, x, y, eps, alpha, steps, norm, random_start, targeted, loss_fn)
            fooled, score = _judge(model, cand, y, targeted, loss_fn)
            better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (score > best_score))
            best[better], best_fooled[better], best_score[better] = cand[better], fooled[better], score[better]
        return best

