"""The device (cuda, then mps, then cpu), chosen once with a printed note, and the seeds."""
from __future__ import annotations

import random

import numpy as np
import torch


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
