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

Example::

    x_adv = pgd(model, x, y, eps=8/255, alpha=2/255, steps=10)
    robust_acc = (model(x_adv).argmax(1) == y).float().mean()
"""
from __future__ import annotations

import math
import numbers
import warnings
from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
NORMS = ("linf", "l2")


# ----------------------------------------------------------------------------- checks

def check_inputs(x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf", model=None) -> None:
    """Raise ValueError for the classic mistakes: eps in 0-255 units, x outside [0,1], x on
    another device or of another dtype than `model` (if given)..."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError("x and y must be torch tensors")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise ValueError(f"eps must be a number in pixel units (e.g. 8/255), got {type(eps).__name__}")
    if y.dtype != torch.long:
        raise ValueError(f"y must hold class indices as torch.long (int64), got {y.dtype}")
    if not torch.is_floating_point(x):
        raise ValueError(f"x must be a float tensor in [0, 1], got dtype {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if y.shape != x.shape[:1]:
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if y.device != x.device:
        raise ValueError(f"x is on {x.device} but y is on {y.device}; put both on the model's device")
    if model is not None:
        check_model(model, x)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    if norm == "linf" and eps > 1:
        raise ValueError(f"eps={eps} is larger than the whole [0,1] pixel range. Epsilon is "
                         f"in pixel units: write eps={eps:g}/255 (= {eps / 255:.4f}), not {eps:g}.")
    if norm == "linf" and eps > 0.5:
        warnings.warn(f"eps={eps} (L-inf) lets the attack change any pixel to any value; "
                      f"did you mean eps={eps:g}/255?", stacklevel=3)
    if x.numel() and not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf values")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must be in [0, 1] (pixel units, unnormalised); got values in "
                         f"[{x.min().item():.3f}, {x.max().item():.3f}]. Normalisation belongs "
                         f"inside the model (models.Normalize), not in the data.")


def check_model(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Raise ValueError if x is on another device or of another dtype than the model's parameters."""
    p = next(model.parameters(), None)
    if p is None:
        return
    if p.device != x.device:
        raise ValueError(f"x is on {x.device} but the model is on {p.device}; move x with x.to('{p.device}')")
    if p.dtype != x.dtype:
        raise ValueError(f"x is {x.dtype} but the model's weights are {p.dtype}; convert x with x.to({p.dtype})")


def check_logits(out: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """Raise ValueError if a model's output looks like probabilities, not logits, or y is out of range."""
    if out.dim() != 2:
        raise ValueError(f"model must return logits of shape (B, num_classes), got {tuple(out.shape)}")
    if y is not None and y.numel() and (y.min() < 0 or y.max() >= out.shape[1]):
        raise ValueError(f"labels must be in [0, {out.shape[1] - 1}] for a model with {out.shape[1]} "
                         f"outputs; got labels in [{y.min().item()}, {y.max().item()}]")
    rows_sum_to_one = torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-4)
    if out.shape[1] > 1 and out.min() >= 0 and rows_sum_to_one:
        raise ValueError("The model's outputs are non-negative and each row sums to 1: they look "
                         "like probabilities (softmax applied). Attacks and losses need raw "
                         "logits; remove the final softmax from the model.")


def probe(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Run the model on two images of x: a ValueError if it cannot take x's shape or does not
    return logits for y's classes."""
    try:
        out = model(x[:2]).detach()
    except RuntimeError as err:
        raise ValueError(f"the model cannot take inputs of shape {tuple(x.shape)} (B, C, H, W): "
                         f"{str(err).splitlines()[0]}") from err
    check_logits(out, y)


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


# ----------------------------------------------------------------------------- losses to maximise

def ce_loss(model: torch.nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy of the model at x_adv, shape (B,)."""
    return F.cross_entropy(model(x_adv), y, reduction="none")


def _input_grad(model, loss_fn: LossFn, x_adv, y, targeted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed loss w.r.t. x_adv only (ascent direction), and the loss (B,)."""
    x_adv = x_adv.detach().requires_grad_(True)
    loss = loss_fn(model, x_adv, y)
    (grad,) = torch.autograd.grad(loss.sum(), x_adv)
    return (-grad if targeted else grad), loss.detach()


# ----------------------------------------------------------------------------- FGSM

def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
         targeted: bool = False, loss_fn: LossFn = ce_loss) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, ICLR 2015).

    Threat model: L-inf ball of radius eps (pixel units, e.g. 8/255), white box.
    One step: x_adv = clip_[0,1](x + eps * sign(grad_x loss(f(x), y))).

    Args:
        model: returns logits (B, K) for inputs (B, C, H, W) in [0, 1].
        x: clean images (B, C, H, W) in [0, 1].  y: labels (B,), or target labels if targeted.
        eps: L-inf radius in pixel units.
        targeted: step *down* the loss towards the target labels y.
        loss_fn: per-example loss (model, x_adv, y) -> (B,) to ascend; default cross-entropy.
    Returns:
        x_adv (B, C, H, W), detached, in [0, 1], with ||x_adv - x||_inf <= eps.
    """
    check_inputs(x, y, eps, "linf", model)
    if x.shape[0] == 0 or eps == 0:
        return x.detach().clone()
    with eval_mode(model):
        probe(model, x, y)
        grad, _ = _input_grad(model, loss_fn, x, y, targeted)
        return (x + eps * grad.sign()).clamp(0, 1).detach()


# ----------------------------------------------------------------------------- PGD

def _random_start(x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """A random delta: uniform in the L-inf cube, or uniform radius along a random L2 direction."""
    if norm == "linf":
        delta = torch.empty_like(x).uniform_(-eps, eps)
    else:
        direction = torch.randn_like(x)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = direction * eps * torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)
    return (x + delta).clamp(0, 1) - x


def _step_and_project(delta, grad, x, eps: float, alpha: float, norm: str) -> torch.Tensor:
    """One ascent step of size alpha, then projection onto the eps-ball and the [0,1] box."""
    if norm == "linf":
        delta = (delta + alpha * grad.sign()).clamp(-eps, eps)
    else:
        g_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = delta + alpha * grad / g_norm
        d_norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * (eps / d_norm.clamp_min(1e-12)).clamp(max=1.0)
    return (x + delta).clamp(0, 1) - x


def _pgd_once(model, x, y, eps, alpha, steps, norm, random_start, targeted, loss_fn):
    """One PGD run from one start; returns x_adv (B,C,H,W)."""
    delta = _random_start(x, eps, norm) if random_start else torch.zeros_like(x)
    for _ in range(steps):
        grad, _ = _input_grad(model, loss_fn, x + delta, y, targeted)
        delta = _step_and_project(delta, grad, x, eps, alpha, norm)
    return (x + delta).detach()


def _judge(model, x_adv, y, targeted: bool, loss_fn: LossFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: did x_adv fool the model (B,) bool, and how strong is it (B,) (higher = stronger)."""
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
        loss = loss_fn(model, x_adv, y)
    return (pred == y if targeted else pred != y), (-loss if targeted else loss)


def pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
        alpha: float | None = None, steps: int = 10, norm: str = "linf",
        random_start: bool = True, restarts: int = 1, targeted: bool = False,
        loss_fn: LossFn = ce_loss, validate: bool = True) -> torch.Tensor:
    """Projected Gradient Descent (Madry et al., ICLR 2018), L-inf or L2.

    Threat model: the L-inf (or L2) ball of radius eps around x, intersected with
    [0,1], white box. Each step ascends the loss (sign of the gradient for L-inf,
    the unit-norm gradient for L2) by alpha and projects back onto the ball.

    Args:
        model: returns logits (B, K) for inputs (B, C, H, W) in [0, 1].
        x: clean images (B, C, H, W) in [0, 1].  y: labels (B,), or targets if targeted.
        eps: radius in pixel units (L-inf: e.g. 8/255; L2: e.g. 0.5).
        alpha: step size in the same units; default 2.5 * eps / steps.
        steps: gradient steps per restart.
        norm: 'linf' or 'l2'.
        random_start: start from a uniformly random point of the ball (else from x).
        restarts: independent runs; each example keeps its strongest result
            (one that fools the model, else the highest final loss).
        targeted: make the model predict y (the target labels) instead of leaving y.
        loss_fn: per-example loss (model, x_adv, y) -> (B,) to ascend; default
            cross-entropy. C-LEAD and TRADES pass their own inner losses here.
        validate: check x, y, eps and the model first. The training loop checks its
            batches once per epoch and passes False (each check waits for the GPU).
    Returns:
        x_adv (B, C, H, W), detached, in [0, 1], within eps of x in the chosen norm.
    """
    if validate:
        check_inputs(x, y, eps, norm, model)
    for name, v in (("steps", steps), ("restarts", restarts)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{name} must be an int, got {v!r}")
    if steps < 0 or restarts < 1:
        raise ValueError(f"need steps >= 0 and restarts >= 1, got steps={steps}, restarts={restarts}")
    alpha = 2.5 * eps / max(steps, 1) if alpha is None else alpha
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha (step size) must be finite and >= 0, got {alpha}")
    if x.shape[0] == 0 or eps == 0:
        return x.detach().clone()
    x = x.detach()
    with eval_mode(model):
        if validate:
            probe(model, x, y)
        best = _pgd_once(model, x, y, eps, alpha, steps, norm, random_start, targeted, loss_fn)
        if restarts == 1:
            return best
        best_fooled, best_score = _judge(model, best, y, targeted, loss_fn)
        for _ in range(restarts - 1):
            cand = _pgd_once(model, x, y, eps, alpha, steps, norm, random_start, targeted, loss_fn)
            fooled, score = _judge(model, cand, y, targeted, loss_fn)
            better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (score > best_score))
            best[better], best_fooled[better], best_score[better] = cand[better], fooled[better], score[better]
        return best


ATTACKS = {"fgsm": fgsm, "pgd": pgd}
