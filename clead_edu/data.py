"""Datasets -> loaders of float tensors in [0, 1].

Every dataset here yields images as float tensors of shape (C, H, W) with values
in [0, 1] and integer labels. Normalisation is *not* done here: it is the first
layer of every model (see `models.Normalize`), so that epsilon is always in pixel
units (8/255 means 8 grey levels out of 255).

One record per dataset (`DatasetRecord`, in `DATASETS`): its loader, its threat model (eps
and the training PGD step), what the quick preset and the full preset change for it, where
its files come from, and the augmentation its training split applies (declared, so the GPU
fast path repeats it). `from_preset` makes a run's settings from a preset and a record.

    digits       scikit-learn's bundled 8x8 handwritten digits (offline, default)
    cifar10-sample  5,085 training and 517 test CIFAR-10 photos shipped in the package (offline)
    cifar10      torchvision CIFAR-10, downloaded into `root`
    cifar100     torchvision CIFAR-100, downloaded into `root`
    imagenette   torchvision Imagenette (10 ImageNet classes), resized
    folder:PATH  any ImageFolder tree with PATH/train/<class>/ and PATH/test/<class>/

A new dataset is one record: `DATASETS["mine"] = DatasetRecord(load=..., eps=..., alpha=...)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from .config import PRESETS, RunConfig, update


class DatasetUnavailable(FileNotFoundError):
    """The dataset's files are absent and could not be downloaded."""


@dataclass
class Data:
    """A dataset split in two, with what a model needs to know about it.

    `mean`/`std` are per-channel statistics of the training images in [0, 1]
    units; models use them in their first (Normalize) layer.
    """
    name: str
    train: Dataset
    test: Dataset
    classes: list[str]
    shape: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ----------------------------------------------------------------------------- digits

def _digits(root=None, *, seed: int = 0, test_fraction: float = 0.2, **_) -> Data:
    """scikit-learn's 1,797 8x8 digits, grey levels 0..16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N,1,8,8)
    y = torch.tensor(bunch.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    mean, std = x[train_idx].mean().item(), x[train_idx].std().item()
    return Data("digits", TensorDataset(x[train_idx], y[train_idx]),
                TensorDataset(x[test_idx], y[test_idx]),
                [str(i) for i in range(10)], (1, 8, 8), (mean,), (std,))


# ----------------------------------------------------------------------------- cifar10-sample

SAMPLE_FILE = Path(__file__).parent / "assets" / "cifar10_sample.npz"


class Augmented(Dataset):
    """Tensors (N, C, H, W) in [0, 1] with a random transform applied on each access."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.tensors, self.transform = (x, y), transform

    def __len__(self) -> int:
        return len(self.tensors[1])

    def __getitem__(self, i):
        return self.transform(self.tensors[0][i]), self.tensors[1][i]


def _cifar10_sample(root=None, *, augment: bool = True, **_) -> Data:
    """Real CIFAR-10 photos bundled with the package (see data/README.md): 5,085 training
    and 517 test images, 32x32 RGB."""
    import numpy as np
    from torchvision import transforms as T
    arrays = np.load(SAMPLE_FILE)

    def tensors(split):
        x = torch.from_numpy(arrays[f"x_{split}"]).permute(0, 3, 1, 2).float() / 255  # (N,3,32,32)
        return x, torch.from_numpy(arrays[f"y_{split}"])

    x, y = tensors("train")
    crop_flip = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
    train = Augmented(x, y, crop_flip) if augment else TensorDataset(x, y)
    classes = [str(c) for c in arrays["classes"]]
    return Data("cifar10-sample", train, TensorDataset(*tensors("test")), classes, (3, 32, 32),
                CIFAR10_MEAN, CIFAR10_STD)


# ----------------------------------------------------------------------------- torchvision

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

def _unavailable(name: str, root: Path, err: Exception) -> DatasetUnavailable:
    url, archive, folder = DATASETS[name].source
    return DatasetUnavailable(
        f"Dataset '{name}' is not in {root.resolve()} and could not be downloaded "
        f"({type(err).__name__}: {str(err).strip()[:200]}). Missing: "
        f"{root / folder}/ (or the archive {root / archive}). Download {url} on a "
        f"machine with internet access and put the archive at {root / archive} "
        f"(it is extracted on first use), or the extracted folder at {root / folder}/. "
        f"To work offline now, use the bundled dataset instead: --dataset digits "
        f"(or get_data('digits')).")


def _cifar_transforms(augment: bool):
    from torchvision import transforms as T
    train = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    return T.Compose(train + [T.ToTensor()]), T.ToTensor()


def _cifar(name: str, root: Path, *, download: bool = True, augment: bool = True, **_) -> Data:
    from torchvision import datasets
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if name == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
    tr, te = _cifar_transforms(augment)
    try:
        train = cls(root, train=True, transform=tr, download=download)
        test = cls(root, train=False, transform=te, download=download)
    except Exception as err:  # URLError, RuntimeError("Dataset not found"), bad checksum...
        raise _unavailable(name, root, err) from err
    return Data(name, train, test, list(train.classes), (3, 32, 32), mean, std)


def _resize_transforms(size: int, augment: bool):
    from torchvision import transforms as T
    train = ([T.RandomResizedCrop(size, scale=(0.35, 1.0)), T.RandomHorizontalFlip()] if augment
             else [T.Resize(size), T.CenterCrop(size)])
    return T.Compose(train + [T.ToTensor()]), T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor()])


def _imagenette(root: Path, *, download: bool = True, augment: bool = True, image_size: int | None = None,
                **_) -> Data:
    from torchvision import datasets
    image_size = image_size or 64
    tr, te = _resize_transforms(image_size, augment)
    present = (root / "imagenette2-160").is_dir()
    try:
        train = datasets.Imagenette(root, "train", "160px", download=download and not present, transform=tr)
        test = datasets.Imagenette(root, "val", "160px", download=False, transform=te)
    except Exception as err:
        raise _unavailable("imagenette", root, err) from err
    classes = [names[0] for names in train.classes]
    return Data("imagenette", train, test, classes, (3, image_size, image_size), IMAGENET_MEAN, IMAGENET_STD)


def _folder(root=None, *, path: str, augment: bool = True, image_size: int | None = None, **_) -> Data:
    """An ImageFolder tree: path/train/<class>/*.png and path/test/<class>/*.png."""
    from torchvision import datasets
    path = Path(path).expanduser()
    for split in ("train", "test"):
        if not (path / split).is_dir():
            raise DatasetUnavailable(
                f"Folder dataset: {path / split}/ does not exist. 'folder:PATH' needs "
                f"PATH/train/<class>/<image> and PATH/test/<class>/<image> (torchvision "
                f"ImageFolder layout). Offline, use --dataset digits instead.")
    if image_size is None:
        from torchvision import transforms as T
        flip = [T.RandomHorizontalFlip()] if augment else []
        tr, te = T.Compose(flip + [T.ToTensor()]), T.ToTensor()
    else:
        tr, te = _resize_transforms(image_size, augment)
    train = datasets.ImageFolder(path / "train", transform=tr)
    test = datasets.ImageFolder(path / "test", transform=te)
    if train.classes != test.classes:
        raise ValueError(f"{path}: train/ and test/ have different class folders: "
                         f"{train.classes} vs {test.classes}")
    probe = datasets.ImageFolder(path / "train", transform=te)
    x, _ = take(probe, 512, seed=0)
    mean = tuple(x.mean(dim=(0, 2, 3)).tolist())
    std = tuple(x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    return Data(f"folder:{path}", train, test, train.classes, tuple(x.shape[1:]), mean, std)


# ----------------------------------------------------------------------------- the records

@dataclass(frozen=True)
class DatasetRecord:
    """One dataset: how to load it and the settings a run on it starts from.

    load: (root, *, download, augment, image_size, seed, path) -> Data (each loader takes the
        keywords it needs; `path` is the part after the colon of a 'name:PATH' dataset).
    eps, alpha: the L-inf radius and the training PGD step, pixel units.
    quick: what the quick preset changes for it (settings by their flat names).
    full_arch: the full preset's architecture for it, when not the preset's own.
    source: (url, archive file, extracted folder) of a downloaded dataset, for the message
        that says where to put its files; None for one shipped or of the user's own.
    augment: what its training split does to each image: 'crop_flip' (4-pixel padded crop
        and flip), 'flip', 'none', or None (something the GPU fast path cannot repeat).
    """
    load: Callable[..., Data]
    eps: float
    alpha: float
    quick: dict = field(default_factory=dict)
    full_arch: str | None = None
    source: tuple[str, str, str] | None = None
    augment: str | None = "none"


# digits are 8x8 with 17 grey levels, so 8/255 would be less than one grey level. The quick
# preset on the bundled photos: every photo, 15 epochs, and a three-step training attack whose
# step is eps/2 (the lessons' models, pretrained: docs/results.md, "The lessons' photo
# models"); fewer images under attack than on the digits, since a 32x32 colour image costs
# about ten times an 8x8 digit on a CPU.
DATASETS: dict[str, DatasetRecord] = {
    "digits": DatasetRecord(_digits, eps=0.2, alpha=0.05),
    "cifar10-sample": DatasetRecord(_cifar10_sample, eps=8 / 255, alpha=2 / 255, augment="crop_flip",
                                    quick=dict(train_n=None, epochs=15, train_steps=3, alpha=4 / 255, eval_n=200,
                                               curve_n=100, umap_n=200, aa_n=100)),
    "cifar10": DatasetRecord(lambda root, **kw: _cifar("cifar10", root, **kw), eps=8 / 255, alpha=2 / 255,
                             augment="crop_flip", source=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                                                          "cifar-10-python.tar.gz", "cifar-10-batches-py")),
    "cifar100": DatasetRecord(lambda root, **kw: _cifar("cifar100", root, **kw), eps=8 / 255, alpha=2 / 255,
                              augment="crop_flip", source=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                                                           "cifar-100-python.tar.gz", "cifar-100-python")),
    "imagenette": DatasetRecord(_imagenette, eps=4 / 255, alpha=1 / 255, full_arch="resnet18", augment=None,
                                source=("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
                                        "imagenette2-160.tgz", "imagenette2-160")),
    "folder:PATH": DatasetRecord(_folder, eps=8 / 255, alpha=2 / 255, augment="flip"),
}


def record(name: str) -> tuple[DatasetRecord, str | None]:
    """The record of dataset `name` and its path part ('folder:/data/x' -> the 'folder:PATH'
    record and '/data/x'); ValueError listing the names otherwise."""
    key, colon, path = name.partition(":")
    key = f"{key}:PATH" if colon else key
    if key not in DATASETS or (colon and not path):
        raise ValueError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)} "
                         f"(e.g. 'folder:/path/to/tree' for your own ImageFolder data).")
    return DATASETS[key], path if colon else None


def from_preset(preset: str = "quick", dataset: str = "digits", **overrides) -> RunConfig:
    """The settings of `preset` for `dataset` (its record's eps and alpha, and what the preset
    changes for it), then `overrides` (flat names: epochs=5, lam=0.5, pgd_steps=50, ...).
    Raises ValueError for an unknown preset, dataset or setting."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    rec, _ = record(dataset)
    values = {**PRESETS[preset], "eps": rec.eps, "alpha": rec.alpha, **(rec.quick if preset == "quick" else {})}
    if preset == "full" and rec.full_arch:
        values["arch"] = rec.full_arch
    return update(update(RunConfig(dataset=dataset, preset=preset), **values), **overrides)


def get_data(name: str = "digits", root: str | Path = "data", *, download: bool = True,
             augment: bool = True, image_size: int | None = None, seed: int = 0) -> Data:
    """Load a dataset by name; images are float tensors in [0, 1], shape (C, H, W).

    Args:
        name: a name in `DATASETS` ('folder:PATH' with a real path).
        root: where torchvision datasets are downloaded / looked for.
        download: try to download missing torchvision datasets.
        augment: the record's augmentation on the training split (CIFAR, Imagenette, folder).
        image_size: resize side for Imagenette (default 64) and folder datasets
            (default: keep the files' size, which must then all be equal).
        seed: seed of the train/test split of `digits`.
    Raises:
        ValueError: unknown name.  DatasetUnavailable: files missing, no download.
    Each split carries what it does to an image as `.augmentation` (the record's `augment` for
    the training split; 'none' without `augment`; None when it resizes), which the fast path reads.
    """
    rec, path = record(name)
    data = rec.load(Path(root), download=download, augment=augment, image_size=image_size, seed=seed,
                    **({"path": path} if path is not None else {}))
    resized = image_size is not None or rec.augment is None
    data.train.augmentation = None if resized else rec.augment if augment else "none"
    data.test.augmentation = None if resized else "none"
    return data


def subset(dataset: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """A fixed random subset of `n` examples (the whole dataset if n is None or too big)."""
    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, subset_ids(len(dataset), n, seed).tolist())


def subset_ids(size: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """The indices `subset` keeps of a dataset of `size` examples, in its order: (min(n, size),)."""
    if n is None or n >= size:
        return torch.arange(size)
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n]


def split(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split `dataset` at random into (rest, held_out) with `fraction` of it held out,
    e.g. a validation split carved from the training data."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    n_out = max(1, int(round(len(idx) * fraction)))
    return Subset(dataset, idx[n_out:]), Subset(dataset, idx[:n_out])


def take(dataset: Dataset, n: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack `n` examples (a fixed random subset) into tensors x (n,C,H,W) in [0,1], y (n,)."""
    ds = subset(dataset, n, seed)
    if isinstance(ds, (TensorDataset, Augmented)):   # Augmented: the stored images, no random transform
        return ds.tensors[0].clone(), ds.tensors[1].clone()
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs), torch.as_tensor(ys, dtype=torch.long)


def balanced_order(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A permutation of range(len(y)) whose every prefix is a class-balanced random subset:
    each class's examples in a seeded random order, then interleaved class by class
    (round robin). So x[order][:n] never means "the first n images of a class-sorted folder"."""
    g = torch.Generator().manual_seed(seed)
    per_class = [(y == c).nonzero().flatten() for c in torch.unique(y)]
    per_class = [idx[torch.randperm(len(idx), generator=g)] for idx in per_class]
    rank = torch.empty(len(y), dtype=torch.float64)
    offsets = torch.rand(len(per_class), generator=g, dtype=torch.float64)   # the class order within a round
    for k, idx in enumerate(per_class):
        rank[idx] = torch.arange(len(idx), dtype=torch.float64) + offsets[k] / 2
    return torch.argsort(rank, stable=True)


def loader(dataset: Dataset, batch_size: int = 128, *, train: bool = True, seed: int = 0,
           num_workers: int = 0) -> DataLoader:
    """A DataLoader; shuffled with a seeded generator when `train`, so runs repeat exactly."""
    gen = torch.Generator().manual_seed(seed) if train else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, generator=gen,
                      num_workers=num_workers, drop_last=False,
                      pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0)
