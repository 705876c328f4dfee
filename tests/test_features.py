"""features: embeddings of clean/adversarial twins, pair metrics, UMAP."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import EPS

from clead_edu.features import Pairs, embed_pairs, pair_metrics, umap_2d


@pytest.fixture(scope="session")
def pairs(standard_model, pgd_at_model, batch):
    """{'standard': Pairs, 'pgd_at': Pairs} for the 128 test images under PGD-10 at eps 0.2."""
    x, y = batch
    out = {}
    for name, model in (("standard", standard_model), ("pgd_at", pgd_at_model)):
        torch.manual_seed(0)
        out[name] = embed_pairs(model, x, y, eps=EPS, steps=10)
    return out


def test_embed_pairs_shapes_and_norms(pairs, standard_model, batch):
    """Pairs hold unit-norm features of x and of an x_adv inside the eps-ball."""
    x, y = batch
    p = pairs["standard"]
    assert p.clean.shape == p.adv.shape == (len(x), standard_model.feature_dim)
    assert torch.allclose(p.clean.norm(dim=1), torch.ones(len(x)), atol=1e-5)
    assert torch.allclose(p.adv.norm(dim=1), torch.ones(len(x)), atol=1e-5)
    assert (p.x_adv - x).abs().max() <= EPS + 1e-6 and torch.equal(p.y, y)
    with torch.no_grad():
        assert torch.allclose(p.clean, F.normalize(standard_model.features(x), dim=1), atol=1e-5)


def test_pair_distance_by_hand(pairs):
    """pair_distance is the mean of 1 - cos(clean_i, adv_i), within [0, 2]."""
    for p in pairs.values():
        m = pair_metrics(p)
        expected = (1 - F.cosine_similarity(p.clean, p.adv, dim=1)).mean().item()
        assert m["pair_distance"] == pytest.approx(expected, abs=1e-5)
        assert 0 <= m["pair_distance"] <= 2 and m["centroid_distance"] > 0
        assert 0 <= m["adv_nn_accuracy"] <= 1


def test_pgd_at_pulls_twins_together(pairs):
    """PGD-AT keeps adversarial twins closer (relative to class spread) and nearer their own class."""
    std, rob = pair_metrics(pairs["standard"]), pair_metrics(pairs["pgd_at"])
    assert rob["relative_pair_distance"] < std["relative_pair_distance"]
    assert rob["adv_nn_accuracy"] > std["adv_nn_accuracy"] + 0.2


def loo_nn_accuracy(clean: torch.Tensor, adv: torch.Tensor, y: torch.Tensor) -> float:
    """Reference: for each i, the label of the clean point nearest (cosine) to adv[i] among
    all clean points but clean[i], one image at a time."""
    hits = []
    for i in range(len(y)):
        others = [j for j in range(len(y)) if j != i]
        sims = F.cosine_similarity(adv[i:i + 1], clean[others], dim=1)
        hits.append(int(y[others[int(sims.argmax())]] == y[i]))
    return sum(hits) / len(hits)


def test_identical_twins(pairs):
    """With adv == clean: pair distance ~0, and the nearest-neighbour accuracy is the clean
    points' leave-one-out 1-NN accuracy (a point is never its own neighbour)."""
    p = pairs["pgd_at"]
    m = pair_metrics(Pairs(p.clean, p.clean.clone(), p.y, p.x, p.x))
    assert abs(m["pair_distance"]) < 1e-5
    assert m["relative_pair_distance"] == pytest.approx(0, abs=1e-4)
    assert m["adv_nn_accuracy"] == pytest.approx(loo_nn_accuracy(p.clean, p.clean, p.y))


def test_nn_accuracy_matches_reference(pairs):
    """On real PGD pairs of both models: the reference computed one image at a time."""
    for p in pairs.values():
        assert pair_metrics(p)["adv_nn_accuracy"] == pytest.approx(loo_nn_accuracy(p.clean, p.adv, p.y))


def test_nn_accuracy_is_class_agreement_not_twin_identity():
    """12 clean points on a circle, each adversarial twin moved a little (1/10 of the gap)
    toward the next point. With the twin among the candidates every twin is nearest (100%);
    without it, the nearest is the next point, so the accuracy is the share of points whose
    next point has the same label: here 5 of 12 (points 0, 3, 4, 9 and 11)."""
    n = 12
    angle = torch.arange(n) * 2 * torch.pi / n
    clean = torch.stack([angle.cos(), angle.sin()], 1)
    adv = torch.stack([(angle + 0.1 * 2 * torch.pi / n).cos(), (angle + 0.1 * 2 * torch.pi / n).sin()], 1)
    y = torch.tensor([0, 0, 1, 2, 2, 2, 0, 1, 2, 1, 1, 0])
    same_next = (y == y.roll(-1)).float().mean().item()
    assert same_next == pytest.approx(5 / 12)
    with_twin = (y[(adv @ clean.T).argmax(1)] == y).float().mean().item()
    m = pair_metrics(Pairs(clean, adv, y, torch.zeros(n, 1, 1, 1), torch.zeros(n, 1, 1, 1)))
    assert with_twin == 1.0 and m["adv_nn_accuracy"] == pytest.approx(same_next)
    assert m["pair_distance"] < 0.01


def test_umap_2d(pairs):
    """umap_2d on 60 twins returns (120, 2) finite coordinates."""
    p = pairs["pgd_at"]
    n = 60
    sub = Pairs(p.clean[:n], p.adv[:n], p.y[:n], p.x[:n], p.x_adv[:n])
    xy = umap_2d(sub, seed=0)
    assert xy.shape == (2 * n, 2) and np.isfinite(xy).all() and xy.std(0).min() > 0
