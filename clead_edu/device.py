"""The device (cuda, then mps, then cpu), chosen once with a printed note; the training
precision that suits it (`pick_precision`); the seeds."""
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
        if device.type == "mps" and not mps_available():
            raise ValueError(f"device {preference!r} requested but Apple's MPS is not available here "
                             f"(it needs an Apple-silicon Mac and a torch build with MPS); "
                             f"use --device cpu (or leave it out to pick automatically)")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif mps_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose:
        print(f"[clead_edu] using device: {device}")
    return device


def mps_available() -> bool:
    """True where torch can use Apple's GPU (MPS)."""
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_precision(requested: str, device, fast: bool = True) -> str:
    """The number format of the training steps on `device`: 'bf16', 'fp16' or 'fp32'.

    'auto': on CUDA with the fast path (`fast`), bfloat16 autocast from compute capability 8.0
    (A100, H100, RTX 30xx and later) and float16 autocast with a gradient scaler below (Colab's
    T4 is 7.5: no native bfloat16); float32 on the CPU, on Apple's MPS and without the fast path.
    'bf16', 'fp16', 'fp32': that format on any device ('bf16' is refused on a GPU below 8.0).
    Evaluation and the weights stay float32 in every case."""
    device = torch.device(device)
    if requested == "fp32" or (requested == "auto" and (device.type != "cuda" or not fast)):
        return "fp32"
    major, minor = torch.cuda.get_device_capability(device) if device.type == "cuda" else (None, None)
    if requested == "auto":
        return "bf16" if major >= 8 else "fp16"
    if requested == "bf16" and major is not None and major < 8:
        raise ValueError(f"precision 'bf16' requested, but this GPU (compute capability {major}.{minor}) has no "
                         f"native bfloat16; use --precision fp16 (float16 with a gradient scaler) or auto")
    if requested not in ("bf16", "fp16"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {requested!r}")
    return requested


_NOTED: set = set()


def note_precision(precision: str, device) -> None:
    """Print the training precision once per process for each (precision, device)."""
    key = (precision, str(device))
    if key not in _NOTED:
        _NOTED.add(key)
        why = {"bf16": "bfloat16 autocast", "fp16": "float16 autocast with a gradient scaler",
               "fp32": "float32"}[precision]
        print(f"[clead_edu] training precision on {device}: {precision} ({why})")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
