"""Datasets: [0, 1] tensors, seeded subsets and splits, folder data, clear errors when data is missing."""

import numpy as np
import pytest
import torch
from PIL import Image

from clead_edu import data as D


def test_digits_split(digits):
    """digits: 1438/359 images (1, 8, 8), floats in [0, 1], 10 classes, stats of the training split."""
    xtr, ytr = D.take(digits.train)
    xte, _ = D.take(digits.test)
    assert xtr.shape == (1438, 1, 8, 8) and xte.shape == (359, 1, 8, 8)
    assert xtr.dtype == torch.float32 and xtr.min() == 0 and xtr.max() == 1
    assert digits.num_classes == 10 and set(ytr.tolist()) == set(range(10))
    assert digits.mean[0] == pytest.approx(xtr.mean().item(), abs=1e-6)
    assert digits.std[0] == pytest.approx(xtr.std().item(), abs=1e-6)


def test_subset_and_take_are_repeatable(digits):
    """subset/take with a seed give the same images every time; n larger than the set gives it all."""
    a, _ = D.take(digits.test, 50, seed=3)
    b, _ = D.take(digits.test, 50, seed=3)
    c, _ = D.take(digits.test, 50, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert D.subset(digits.test, 10_000) is digits.test and len(D.subset(digits.train, 256)) == 256


def test_folder_dataset(tmp_path):
    """folder:PATH reads an ImageFolder tree into floats in [0, 1] with its class names."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(
                    tmp_path / split / cls / f"{i}.png")
    data = D.get_data(f"folder:{tmp_path}")
    x, y = D.take(data.test)
    assert data.classes == ["cat", "dog"] and data.shape == (3, 6, 6)
    assert x.shape == (4, 3, 6, 6) and 0 <= x.min() and x.max() <= 1 and x.max() > 0.9
    assert sorted(y.tolist()) == [0, 0, 1, 1] and len(data.mean) == 3


def test_unknown_dataset_lists_the_choices():
    """An unknown dataset name raises ValueError listing the known datasets."""
    with pytest.raises(ValueError) as err:
        D.get_data("mnist")
    assert all(name in str(err.value) for name in ("'mnist'", "digits", "cifar10", "imagenette", "folder:"))


def test_missing_cifar_offline_says_what_and_where(tmp_path):
    """CIFAR-10 absent and no download: DatasetUnavailable names the folder, the root and digits."""
    with pytest.raises(D.DatasetUnavailable) as err:
        D.get_data("cifar10", root=tmp_path, download=False)
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "cifar-10-python.tar.gz" in msg
    assert str(tmp_path.resolve()) in msg and "digits" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_missing_folder_dataset(tmp_path):
    """folder:PATH without PATH/train raises DatasetUnavailable naming the path and the layout."""
    missing = tmp_path / "nonexistent"
    with pytest.raises(D.DatasetUnavailable) as err:
        D.get_data(f"folder:{missing}")
    msg = str(err.value)
    assert str(missing / "train") in msg and "digits" in msg and "ImageFolder" in msg


# ----------------------------------------------------------------------------- checkpoints


def test_validation_split_is_disjoint_and_seeded(digits):
    """split() holds out the asked share, never overlaps, and repeats with the same seed."""
    rest, held = D.split(digits.train, 0.2, seed=3)
    assert len(held) == round(0.2 * len(digits.train)) and len(rest) + len(held) == len(digits.train)
    assert not set(rest.indices) & set(held.indices)
    assert held.indices == D.split(digits.train, 0.2, seed=3)[1].indices
    assert held.indices != D.split(digits.train, 0.2, seed=4)[1].indices
    with pytest.raises(ValueError, match="fraction"):
        D.split(digits.train, 1.0)


def test_cifar10_sample_is_real_offline_photos():
    """cifar10-sample: 5,085 training and 517 test photos (3, 32, 32) in [0, 1] (cifar10-mini's),
    shipped in the package (no download), the same on every load; augmentation on train only."""
    d = D.get_data("cifar10-sample", root="/nonexistent", download=False)
    assert (len(d.train), len(d.test), d.shape, d.num_classes) == (5085, 517, (3, 32, 32), 10)
    assert d.classes[:3] == ["airplane", "automobile", "bird"]
    x, y = D.take(d.train)
    assert torch.bincount(y).tolist() == [517, 524, 490, 493, 537, 475, 503, 516, 529, 501]
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4)       # 8-bit photos
    assert x.std() > 0.15 and len({img.sum().item() for img in x[:50]}) == 50   # real, distinct images
    xt, yt = D.take(d.test)
    assert torch.equal(xt, D.take(D.get_data("cifar10-sample").test)[0])
    augmented = torch.stack([d.train[0][0] for _ in range(8)])
    assert not all(torch.equal(augmented[0], a) for a in augmented[1:]), "random crop/flip on train"
    assert torch.equal(d.test[0][0], d.test[0][0])
    plain = D.get_data("cifar10-sample", augment=False)
    assert torch.equal(plain.train[0][0], x[0])


def test_cifar10_sample_on_the_fast_path():
    """The fast path reads the photos whole, with their crop-and-flip augmentation."""
    from clead_edu.fast import as_tensors
    x, y, aug = as_tensors(D.subset(D.get_data("cifar10-sample").train, 100, seed=0))
    assert x.shape == (100, 3, 32, 32) and y.shape == (100,) and aug == "crop_flip"


def test_balanced_order_prefixes_are_class_balanced():
    """On class-sorted labels, every prefix of balanced_order holds each class at most once more
    than any other (while it has images left), is a permutation, and depends on the seed only."""
    import torch

    from clead_edu.data import balanced_order
    y = torch.arange(10).repeat_interleave(30)              # a class-sorted folder: 0,0,...,9,9
    order = balanced_order(y, seed=0)
    assert sorted(order.tolist()) == list(range(300))
    for n in (10, 37, 100, 300):
        counts = torch.bincount(y[order[:n]], minlength=10)
        assert counts.max() - counts.min() <= 1
    assert torch.equal(order, balanced_order(y, seed=0)) and not torch.equal(order, balanced_order(y, seed=1))
    assert len(set(y[:50].tolist())) == 2 and len(set(y[order[:50]].tolist())) == 10


def test_evaluation_images_are_balanced_on_a_class_sorted_test_set():
    """pipeline.evaluation_images: the first curve_n images of a class-sorted test set are balanced."""
    import torch
    from torch.utils.data import TensorDataset

    from clead_edu import config as C
    from clead_edu import data as D
    from clead_edu.pipeline import evaluation_images
    y = torch.arange(4).repeat_interleave(25)
    x = (y.float() / 4).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    data = D.Data("sorted", TensorDataset(x, y), TensorDataset(x, y), list("abcd"), (1, 4, 4), (0.5,), (0.5,))
    cfg = D.from_preset("quick", "digits", eval_n=None, curve_n=20)
    xe, ye, ids = evaluation_images(data, cfg)
    assert len(ye) == 100 and torch.equal(torch.bincount(ye[:20]), torch.tensor([5, 5, 5, 5]))
    assert torch.equal(xe[:, 0, 0, 0], ye.float() / 4)       # images stay with their labels
    assert sorted(ids) == list(range(100)) and torch.equal(y[ids], ye)   # each image's index in the test set
