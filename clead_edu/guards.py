"""Input guards for the attacks: the classic mistakes stopped with a message that says what to do.

The three teaching checks (the lessons' classic bugs) are here:
- eps in 0-255 units (8 instead of 8/255): an error, or a warning above 0.5;
- x outside [0, 1] (normalised data, or 0-255 pixels): an error;
- probabilities instead of logits (a softmax at the end of the model): an error.
The rest are plumbing (tensor types, shapes, devices, dtypes, argument types).
`attacks.py` calls `check_attack` once per call, so the algorithm reads on its own.
"""
from __future__ import annotations

import math
import numbers
import warnings
from contextlib import contextmanager

import torch

NORMS = ("linf", "l2")


def check_attack(model, x, y, *, eps, norm: str = "linf", alpha=None, steps: int = 1, restarts: int = 1) -> None:
    """Every check an attack makes before it starts; ValueError (or a warning) on a classic mistake."""
    check_inputs(x, y, eps, norm, model)
    for name, v in (("steps", steps), ("restarts", restarts)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{name} must be an int, got {v!r}")
    if steps < 0 or restarts < 1:
        raise ValueError(f"need steps >= 0 and restarts >= 1, got steps={steps}, restarts={restarts}")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, numbers.Real)
                              or not math.isfinite(alpha) or alpha < 0):
        raise ValueError(f"alpha (step size) must be finite and >= 0, got {alpha}")
    if len(x):
        probe(model, x, y)


LARGE_EPS_WARNING = "lets the attack change any pixel to any value"


@contextmanager
def quiet_large_eps():
    """Silence the "did you mean eps=.../255?" warning inside the package's own checks and curves,
    which use eps above 0.5 on purpose (2 eps at MNIST-scale eps 0.3 is 0.6)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f".*{LARGE_EPS_WARNING}")
        yield


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
        warnings.warn(f"eps={eps} (L-inf) {LARGE_EPS_WARNING}; "
                      f"did you mean eps={eps:g}/255?", stacklevel=4)
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
