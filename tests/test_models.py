"""Models: logits out, features for the representation, normalisation inside."""

import pytest
import torch

from clead_edu.models import Normalize, build_model, model_for


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
