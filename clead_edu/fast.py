"""The GPU fast path: the whole training set on the device, augmented there in batches.

    loader = fast_loader(model, train_set, batch_size=128, seed=0)   # None: not possible

Used by `train.train` when `TrainConfig.fast` is set (the full preset on CUDA):
images live on the GPU as uint8, each batch is cropped/flipped in one batched
operation, the model runs channels_last with cudnn autotuning, and the training
steps run under mixed precision: bf16 autocast from compute capability 8.0, float16 autocast
with a gradient scaler below (`mixed_precision`, `device.pick_precision`; `TrainConfig.precision`
overrides it). Evaluation always runs in float32.
"""
from __future__ import annotations

import math
import weakref

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from .data import Augmented
from .device import note_precision, pick_precision

_SCALERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # optimizer -> its GradScaler


def mixed_precision(cfg, device: torch.device, opt=None):
    """(autocast context, gradient scaler) for the steps of one epoch at `cfg.precision`.

    No autocast when evaluating (`opt` None; the scaler is then None). The scaler scales the loss
    for float16 only (elsewhere it is a disabled GradScaler that passes through); there is one per
    optimizer, kept across its epochs so that its scale adapts once, and saved with the training
    state (`scaler_state`, `restore_scaler`). The choice is printed once (`device.note_precision`)."""
    if opt is None:
        return torch.autocast(device.type, enabled=False), None
    precision = pick_precision(cfg.precision, device, cfg.fast)
    note_precision(precision, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
    if opt not in _SCALERS:
        _SCALERS[opt] = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return autocast, _SCALERS[opt]


def scaler_state(opt) -> dict:
    """The state of `opt`'s gradient scaler (its scale and growth tracker); {} when it has none
    or it is disabled (every format but float16)."""
    scaler = _SCALERS.get(opt)
    return scaler.state_dict() if scaler is not None else {}


def restore_scaler(opt, cfg, device: torch.device, state: dict) -> None:
    """Give `opt` a gradient scaler that continues from `state` (from `scaler_state`; {} leaves
    the scaler to start afresh)."""
    if state:
        mixed_precision(cfg, device, opt)[1].load_state_dict(state)


def fast_loader(model, train_set, batch_size: int, seed: int = 0, aug: str | None = None):
    """The fast path's set-up: channels_last weights, cudnn autotuning, and a DeviceLoader with
    the whole training set on the model's device (None if the dataset cannot be held that way).
    The augmentation is the dataset's own (see `as_tensors`) unless `aug` is given."""
    device = next(model.parameters()).device
    model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = as_tensors(train_set)
    if data is None:
        return None
    x, y, own_aug = data
    return DeviceLoader(x, y, batch_size, aug=aug or own_aug, seed=seed, device=device, channels_last=True)


def _root(dataset: Dataset) -> tuple[Dataset, list[int] | None]:
    """The dataset under any Subset wrappers, and the indices into it (None = all)."""
    idx = None
    while isinstance(dataset, Subset):
        idx = [dataset.indices[i] for i in idx] if idx is not None else list(dataset.indices)
        dataset = dataset.dataset
    return dataset, idx


def as_tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor, str] | None:
    """The whole dataset as x (N, C, H, W) uint8 or float, y (N,), and the augmentation its
    transform applies ('crop_flip', 'flip' or 'none', as `data.get_data` declares it in the
    dataset's `.augmentation`); None if it cannot be read that way (nothing declared, or a
    transform the fast path cannot repeat, such as a resizing crop).

    Reads the raw pixels of torchvision CIFAR (`.data`), ImageFolder (its files) and
    TensorDataset/Augmented, without the per-image transforms; Subsets are followed."""
    from torchvision import datasets
    from torchvision.transforms import functional as TF
    root, idx = _root(dataset)
    aug = getattr(root, "augmentation", "none" if isinstance(root, TensorDataset) else None)
    if aug is None:
        return None
    if isinstance(root, (TensorDataset, Augmented)):
        x, y = root.tensors
    elif isinstance(root, datasets.CIFAR10):      # CIFAR-100 subclasses CIFAR10
        x, y = torch.from_numpy(root.data).permute(0, 3, 1, 2), torch.as_tensor(root.targets)
    elif isinstance(root, datasets.ImageFolder):
        keep = idx if idx is not None else range(len(root.samples))
        x = torch.stack([TF.pil_to_tensor(root.loader(root.samples[i][0]).convert("RGB")) for i in keep])
        y, idx = torch.as_tensor([root.samples[i][1] for i in keep]), None
    else:
        return None
    if idx is not None:
        x, y = x[idx], y[idx]
    return x, y.long(), aug


class DeviceLoader:
    """Batches from a dataset held whole on one device, augmented there (the fast path).

    The images live on `device` as uint8 (or float) tensors; each batch is shuffled with
    a seeded generator, converted to float in [0, 1] and, per `aug`, randomly cropped
    after 4-pixel zero padding and/or flipped left-right, all in one batched operation.
    Yields x (B, C, H, W) float32 in [0, 1] and y (B,) on `device`, like a DataLoader.
    """

    def __init__(self, x, y, batch_size: int, *, aug: str = "none", seed: int = 0, device="cpu",
                 channels_last: bool = False):
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.aug, self.device = batch_size, aug, torch.device(device)
        self.channels_last = channels_last
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.y), generator=self.generator, device=self.device)
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            x = self.x[idx]
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            x = augment_batch(x, self.aug, self.generator)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.y[idx]


def augment_batch(x: torch.Tensor, aug: str, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding ('crop_flip') and left-right flip ('crop_flip', 'flip')
    of a batch x (B, C, H, W), each image with its own random offset and coin."""
    if aug == "none":
        return x
    b, _, h, w = x.shape
    if aug == "crop_flip":
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]   # (B,1,H,1)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]   # (B,1,1,W)
        x = padded[torch.arange(b, device=x.device)[:, None, None, None],
                   torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
    flip = torch.rand(b, generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)
