"""data and models: images are floats in [0, 1]; models normalise inside and return logits."""
import numpy as np
import pytest
import torch
from PIL import Image

from clead_edu import data as D
from clead_edu.models import Normalize, build_model, model_for


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


def test_model_contract(digits):
    """model(x) == model.fc(model.features(x)); logits (B, K); normalisation is the first layer."""
    model = model_for(digits).eval()
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        logits, h = model(x), model.features(x)
        assert logits.shape == (5, 10) and h.shape == (5, model.feature_dim)
        assert torch.allclose(logits, model.fc(h))
        assert torch.allclose(model.normalize(x), (x - digits.mean[0]) / digits.std[0])
    assert isinstance(next(iter(model.children())), Normalize)
    assert {"normalize.mean", "normalize.std"} <= set(model.state_dict())


def test_build_model_rejects_unknown_architecture():
    """An unknown architecture name raises ValueError listing the choices."""
    with pytest.raises(ValueError, match="small_cnn"):
        build_model("vgg", 10)
