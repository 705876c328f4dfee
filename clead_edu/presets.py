"""Named presets: `quick` (CPU, minutes) and `full` (GPU, paper scale).

`preset(name, dataset)` returns one flat dict; every entry can be overridden on
the command line or in a notebook's parameters cell. Epsilons are in pixel units.
"""
from __future__ import annotations

PRESETS = {
    "quick": dict(
        arch="small_cnn", epochs=10, batch_size=64, lr=0.05,
        train_n=5000,            # training images (None = all)
        train_steps=5,           # PGD steps inside training
        eval_n=500,              # test images for clean/FGSM/PGD
        pgd_steps=20, restarts=1,
        extra_pgd_steps=None, extra_restarts=1,   # e.g. PGD-50 with 3 restarts
        autoattack="quick", aa_n=200,
        umap_n=300, curve_n=300,
        fast=False,              # the GPU fast path (train.fast_setup); see --fast
    ),
    "full": dict(
        arch="preact_resnet18", epochs=30, batch_size=128, lr=0.1,
        train_n=None, train_steps=10,
        eval_n=None, pgd_steps=20, restarts=1,
        extra_pgd_steps=50, extra_restarts=3,
        autoattack="standard", aa_n=1000,
        umap_n=1000, curve_n=1000,
        fast=True,               # used on CUDA only, unless --fast on
    ),
}

# Per-dataset threat model: L-inf eps and the training PGD step, in pixel units.
# digits are 8x8 with 17 grey levels, so 8/255 would be less than one grey level.
DATASET_DEFAULTS = {
    "digits": dict(eps=0.2, alpha=0.05),
    "cifar10": dict(eps=8 / 255, alpha=2 / 255),
    "cifar100": dict(eps=8 / 255, alpha=2 / 255),
    "imagenette": dict(eps=4 / 255, alpha=1 / 255, arch_full="resnet18"),
    "folder": dict(eps=8 / 255, alpha=2 / 255),
}


def preset(name: str = "quick", dataset: str = "digits") -> dict:
    """The settings of preset `name` for `dataset` (a flat dict: arch, epochs, eps, ...)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    key = "folder" if dataset.startswith("folder:") else dataset
    if key not in DATASET_DEFAULTS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of: digits, cifar10, "
                         f"cifar100, imagenette, folder:PATH")
    ds = DATASET_DEFAULTS[key]
    out = {**PRESETS[name], "eps": ds["eps"], "alpha": ds["alpha"], "preset": name, "dataset": dataset}
    if name == "full" and "arch_full" in ds:
        out["arch"] = ds["arch_full"]
    return out
