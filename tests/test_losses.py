"""losses: SupCon against a literal double loop and pytorch-metric-learning; C-LEAD and TRADES by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from clead_edu.losses import (
    clead_inner,
    clead_loss,
    supcon_loss,
    trades_inner,
    trades_loss,
)
from clead_edu.models import build_model

B, D = 12, 8


def reference_supcon(z, labels, tau, positives):
    """SupCon written out anchor by anchor in plain Python floats (views: clean 0..B-1, adv B..2B-1)."""
    n = len(labels)
    sim = (z.double() @ z.double().T).tolist()
    labels = labels.tolist()
    per_anchor = []
    for i in range(n):
        twin = (i + n // 2) % n
        if positives == "class":
            pos = [p for p in range(n) if p != i and labels[p] == labels[i]]
            den = [a for a in range(n) if a != i]
        else:
            pos = [twin]
            den = [a for a in range(n) if a == twin or labels[a] != labels[i]]
        log_z = math.log(sum(math.exp(sim[i][a] / tau) for a in den))
        per_anchor.append(-sum(sim[i][p] / tau - log_z for p in pos) / len(pos))
    return sum(per_anchor) / len(per_anchor)


def views(seed=0, dtype=torch.float64):
    """2B unit vectors, clean then adversarial (each twin near its clean view), labels with repeats."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(B, D, generator=g, dtype=dtype)
    adv = clean + 0.5 * torch.randn(B, D, generator=g, dtype=dtype)
    y = torch.randint(0, 4, (B,), generator=g)
    return F.normalize(torch.cat([clean, adv]), dim=1), torch.cat([y, y])


# ----------------------------------------------------------------------------- SupCon

@pytest.mark.parametrize("positives", ["class", "pair"])
@pytest.mark.parametrize("tau", [0.1, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_supcon_matches_double_loop(positives, tau, seed):
    """supcon_loss equals the anchor-by-anchor definition (float64 and float32 inputs)."""
    z, labels = views(seed)
    ref = reference_supcon(z, labels, tau, positives)
    # rel 1e-6, not 1e-12: supcon_loss builds its 1/|P(i)| weights in float32 (pos.float())
    assert supcon_loss(z, labels, tau, positives).item() == pytest.approx(ref, rel=1e-6)
    assert supcon_loss(z.float(), labels, tau, positives).item() == pytest.approx(ref, rel=1e-5)


def test_supcon_modes_differ():
    """'class' and 'pair' are different losses when classes repeat in the batch."""
    z, labels = views(0)
    assert abs(supcon_loss(z, labels, 0.1, "class") - supcon_loss(z, labels, 0.1, "pair")) > 1e-3


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_supcon_class_matches_pytorch_metric_learning(tau):
    """positives='class' equals PML's SupConLoss (mean over anchors of mean over positives)."""
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    z, labels = views(2)
    theirs = pml.SupConLoss(temperature=tau)(z, labels)
    assert torch.allclose(supcon_loss(z, labels, tau, "class"), theirs, rtol=1e-6, atol=0)


def test_supcon_pair_matches_pytorch_metric_learning():
    """positives='pair' equals PML's SupConLoss given explicit pairs: twin positive, other classes negative."""
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    z, labels = views(3)
    n = len(labels)
    idx = torch.arange(n)
    twin = (idx + n // 2) % n
    a2, neg = torch.nonzero(labels[:, None] != labels[None, :], as_tuple=True)
    theirs = pml.SupConLoss(temperature=0.2)(z, labels, indices_tuple=(idx, twin, a2, neg))
    assert torch.allclose(supcon_loss(z, labels, 0.2, "pair"), theirs, rtol=1e-6, atol=0)


@pytest.mark.parametrize("positives", ["class", "pair"])
def test_supcon_gradients_are_finite(positives):
    """backward through supcon_loss (with its -inf masks) gives finite, non-zero gradients."""
    z, labels = views(4, dtype=torch.float32)
    raw = z.clone().requires_grad_(True)
    supcon_loss(F.normalize(raw, dim=1), labels, 0.1, positives).backward()
    assert torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0


def test_supcon_rejects_bad_arguments():
    """tau <= 0, an unknown positives mode and an odd number of views raise ValueError."""
    z, labels = views(0)
    for tau in (0.0, -0.1):
        with pytest.raises(ValueError, match="tau"):
            supcon_loss(z, labels, tau)
    with pytest.raises(ValueError, match="positives"):
        supcon_loss(z, labels, 0.1, "twins")
    with pytest.raises(ValueError, match="2B"):
        supcon_loss(z[:5], labels[:5], 0.1)


# ----------------------------------------------------------------------------- C-LEAD and TRADES

@pytest.fixture
def net_and_batch():
    """A random small_cnn in eval mode, 8 images in [0,1], labels, and a perturbed copy."""
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, (0.3,), (0.37,)).eval()
    x = torch.rand(8, 1, 8, 8)
    x_adv = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    return model, x, torch.randint(0, 10, (8,)), x_adv


def test_trades_loss_by_hand(net_and_batch):
    """trades_loss = CE(f(x), y) + beta * mean_i KL(softmax f(x_i) || softmax f(x_adv_i))."""
    model, x, y, x_adv = net_and_batch
    with torch.no_grad():
        lc, la = model(x), model(x_adv)
        p, q = lc.softmax(1), la.softmax(1)
        kl = (p * (p.log() - q.log())).sum(1).mean()
        loss, logits = trades_loss(model, x, y, x_adv, beta=6.0)
        per_example = trades_inner(p)(model, x_adv, y)
    assert loss.item() == pytest.approx((F.cross_entropy(lc, y) + 6.0 * kl).item(), rel=1e-5)
    assert torch.allclose(logits, la, atol=1e-5)
    assert torch.allclose(per_example, (p * (p.log() - q.log())).sum(1), atol=1e-6)


def test_clead_loss_without_contrastive_term_is_cross_entropy(net_and_batch):
    """clead_loss with lam=0 is plain cross-entropy on the adversarial logits."""
    model, x, y, x_adv = net_and_batch
    with torch.no_grad():
        loss, logits = clead_loss(model, x, y, x_adv, lam=0.0)
        expected = model(x_adv)
    assert torch.allclose(logits, expected, atol=1e-5)
    assert loss.item() == pytest.approx(F.cross_entropy(expected, y).item(), rel=1e-5)


def test_clead_loss_adds_supcon_on_normalised_features(net_and_batch):
    """clead_loss = CE(f(x_adv), y) + lam * SupCon over the 2B normalised penultimate features."""
    model, x, y, x_adv = net_and_batch
    with torch.no_grad():
        loss, _ = clead_loss(model, x, y, x_adv, lam=0.5, tau=0.2, positives="class")
        z = F.normalize(torch.cat([model.features(x), model.features(x_adv)]), dim=1)
        ce = F.cross_entropy(model(x_adv), y).item()
    expected = ce + 0.5 * reference_supcon(z, torch.cat([y, y]), 0.2, "class")
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_clead_inner(net_and_batch):
    """clead_inner: per-example CE for mu=0; CE + mu * (1 - cos(z_clean, z_adv)) for mu > 0."""
    model, x, y, x_adv = net_and_batch
    with torch.no_grad():
        z_clean = F.normalize(model.features(x), dim=1)
        ce = F.cross_entropy(model(x_adv), y, reduction="none")
        cos = F.cosine_similarity(model.features(x), model.features(x_adv), dim=1)
        plain = clead_inner(z_clean, mu=0.0)(model, x_adv, y)
        with_rep = clead_inner(z_clean, mu=2.0)(model, x_adv, y)
    assert plain.shape == (8,) and torch.allclose(plain, ce, atol=1e-5)
    assert torch.allclose(with_rep, ce + 2.0 * (1 - cos), atol=1e-5)
    assert (with_rep - plain).abs().max() > 1e-4


# ----------------------------------------------------------------------------- BatchNorm and the TRADES start

def no_bn_model():
    """A tiny model with features/fc and no BatchNorm: forwarding is per-example."""
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU()), nn.Linear(16, 10)

        def features(self, x):
            return self.body(x)

        def forward(self, x):
            return self.fc(self.features(x))
    return Net()


@pytest.mark.parametrize("which", ["trades", "clead"])
def test_separate_and_joint_forwarding(net_and_batch, which):
    """With BatchNorm in train mode, separate forwarding (the default) and one joint batch give
    different losses; without BatchNorm (or in eval mode) they are the same loss."""
    model, x, y, x_adv = net_and_batch

    def both(m):
        fn = (lambda j: trades_loss(m, x, y, x_adv, joint_bn=j)[0]) if which == "trades" else \
             (lambda j: clead_loss(m, x, y, x_adv, lam=1.0, joint_bn=j)[0])
        with torch.no_grad():
            return fn(False).item(), fn(True).item()

    separate, joint = both(model.train())
    assert abs(separate - joint) > 1e-4
    assert both(model.eval())[0] == pytest.approx(both(model.eval())[1], rel=1e-5)
    torch.manual_seed(0)
    plain = no_bn_model().train()
    separate, joint = both(plain)
    assert separate == pytest.approx(joint, rel=1e-5)


def test_separate_forwarding_uses_each_views_own_batch_statistics(net_and_batch):
    """Separate forwarding equals forwarding each view alone in train mode (BatchNorm sees B, not 2B)."""
    from clead_edu.losses import forward_views
    model, x, _, x_adv = net_and_batch
    model.train()
    with torch.no_grad():
        out = forward_views(model, x, x_adv)
        assert torch.allclose(out, torch.cat([model(x), model(x_adv)]), atol=1e-6)
        assert torch.allclose(forward_views(model, x, x_adv, joint_bn=True), model(torch.cat([x, x_adv])), atol=1e-6)


def test_trades_objective_starts_at_gaussian_scale_0001(net_and_batch, monkeypatch):
    """The trades objective starts its inner maximisation at x + 0.001 N(0,1) (random_start=0.001),
    and with zero steps the start is within a few thousandths of x."""
    from clead_edu import objectives as O
    from clead_edu.config import TrainConfig
    model, x, y, _ = net_and_batch
    seen = {}
    real = O.pgd

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)
    monkeypatch.setattr(O, "pgd", spy)
    O.OBJECTIVES["trades"].step(model.train(), x, y, TrainConfig(objective="trades", eps=0.2, alpha=0.05), None)
    assert seen["random_start"] == 0.001 == O.TRADES_START
    start = real(model, x, y, eps=0.2, steps=0, random_start=O.TRADES_START)
    delta = start - x
    assert 0 < delta.abs().max() < 0.006 and delta.std().item() < 0.002


# ----------------------------------------------------------------------------- the alignment control

def test_align_loss_by_hand(net_and_batch):
    """align_loss = CE(f(x_adv), y) + lam * mean_i (1 - cos(h(x_i), h(x_adv_i))), computed by hand."""
    from clead_edu.losses import align_loss
    model, x, y, x_adv = net_and_batch
    with torch.no_grad():
        loss, logits = align_loss(model, x, y, x_adv, lam=0.7)
        hc, ha = model.features(x), model.features(x_adv)
        cos = [float(hc[i] @ ha[i] / (hc[i].norm() * ha[i].norm())) for i in range(len(x))]
        ce = F.cross_entropy(model(x_adv), y).item()
    assert torch.allclose(logits, model(x_adv), atol=1e-5)
    assert loss.item() == pytest.approx(ce + 0.7 * sum(1 - c for c in cos) / len(cos), rel=1e-5)


def test_align_has_no_negatives_unlike_supcon(net_and_batch):
    """No other image enters a pair's alignment term: in eval mode the batch loss is the mean of the
    loss of each (clean, adversarial) pair alone. C-LEAD's SupCon term (negatives) is not."""
    from clead_edu.losses import align_loss
    model, x, y, x_adv = net_and_batch
    with torch.no_grad():
        for fn in (align_loss, clead_loss):
            batch = fn(model, x, y, x_adv, lam=1.0)[0].item()
            alone = sum(fn(model, x[i:i + 1], y[i:i + 1], x_adv[i:i + 1], lam=1.0)[0].item()
                        for i in range(len(x))) / len(x)
            if fn is align_loss:
                assert batch == pytest.approx(alone, rel=1e-5)
            else:
                assert abs(batch - alone) > 1e-2
