"""The teaching guards: eps in 0-255 units, inputs outside [0, 1], probabilities instead of logits."""

import pytest
import torch.nn as nn

from clead_edu.attacks import fgsm, pgd
from clead_edu.evaluate import predict

ATTACKS = {"fgsm": lambda m, x, y, **kw: fgsm(m, x, y, **kw),
           "pgd": lambda m, x, y, **kw: pgd(m, x, y, steps=2, **kw)}
attack_names = pytest.mark.parametrize("attack", list(ATTACKS))


class Softmaxed(nn.Module):
    """A classifier that (wrongly) returns probabilities."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(1)


# ----------------------------------------------------------------------------- attacks


@attack_names
def test_eps_in_255_units_is_refused(attack, standard_model, batch):
    """eps=8 (meant as 8/255) raises ValueError that says to write /255."""
    x, y = batch
    with pytest.raises(ValueError, match="/255"):
        ATTACKS[attack](standard_model, x[:4], y[:4], eps=8)


@attack_names
def test_eps_above_half_warns(attack, standard_model, batch):
    """An L-inf eps in (0.5, 1] is legal but suspicious: a warning mentions /255."""
    x, y = batch
    with pytest.warns(UserWarning, match="/255"):
        ATTACKS[attack](standard_model, x[:4], y[:4], eps=0.8)


@attack_names
@pytest.mark.parametrize("bad", ["times255", "normalised"])
def test_inputs_outside_unit_interval_are_refused(attack, bad, standard_model, batch, digits):
    """Images in 0-255 or already normalised raise ValueError mentioning [0, 1]."""
    x, y = batch
    x_bad = x[:4] * 255 if bad == "times255" else (x[:4] - digits.mean[0]) / digits.std[0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ATTACKS[attack](standard_model, x_bad, y[:4], eps=0.1)


@pytest.mark.parametrize("use", ["fgsm", "pgd", "predict"])
def test_probability_outputs_are_refused(use, standard_model, batch):
    """A model ending in softmax raises ValueError mentioning probabilities (attacks and predict)."""
    x, y = batch
    model = Softmaxed(standard_model)
    with pytest.raises(ValueError, match="probabilities"):
        if use == "predict":
            predict(model, x)
        else:
            ATTACKS[use](model, x, y, eps=0.1)


# ----------------------------------------------------------------------------- data
