"""released: the authors' three-view loss against a literal loop, the three views, the pipeline's steps."""
import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from clead_edu import pipeline
from clead_edu import released as R
from clead_edu import train as T
from clead_edu.config import TrainConfig
from clead_edu.losses import embed
from clead_edu.objectives import OBJECTIVES, attack_budget, make_head
from clead_edu.models import build_model


def literal_released_loss(z, tau):
    """Written straight from SimCLRLoss.forward (losses/losses.py of suklav/C_Lead): for the pair
    (1, 2), anchors features[:, 0] against contrast [features[:, 0]; features[:, 1]]; the positive of
    anchor i is column b + i; the denominator is every column except i itself; the loss is the mean
    over anchors of -log p; the same for (1, 3); the two are averaged. Plain Python floats."""
    b = z.shape[0]
    z = z.double().tolist()

    def dot(u, v):
        return sum(p * q for p, q in zip(u, v))

    def pair(j):
        contrast = [z[k][0] for k in range(b)] + [z[k][j] for k in range(b)]
        total = 0.0
        for i in range(b):
            logits = [dot(z[i][0], c) / tau for c in contrast]
            den = sum(math.exp(v) for col, v in enumerate(logits) if col != i)
            total += -(logits[b + i] - math.log(den))
        return total / b
    return (pair(1) + pair(2)) / 2


@pytest.mark.parametrize("tau", [0.1, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_released_loss_matches_literal_loop(tau, seed):
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(6, 3, 5, generator=g, dtype=torch.float64), dim=2)
    assert R.released_loss(z, tau).item() == pytest.approx(literal_released_loss(z, tau), rel=1e-10)
    assert R.released_loss(z.float(), tau).item() == pytest.approx(literal_released_loss(z, tau), rel=1e-5)
    with pytest.raises(ValueError, match="B, 3, D"):
        R.released_loss(z[:, :2], tau)


def test_released_temperature_and_head():
    """Temperature 0.1 (SCAN's simclr config) and a linear head to 128 dimensions."""
    assert R.TEMPERATURE == 0.1
    model = build_model("small_cnn", 10, 1, (0.3,), (0.37,))
    head = make_head(model, TrainConfig(objective="clead_released"))
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (model.feature_dim, 128)
    assert make_head(model, TrainConfig(objective="clead")) is None
    logits_head = make_head(model, TrainConfig(objective="clead_released", head_input="logits"))
    assert (logits_head.in_features, logits_head.out_features) == (10, 128)


@pytest.fixture
def setting():
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, (0.3,), (0.37,))
    head = nn.Linear(model.feature_dim, 128)
    cfg = TrainConfig(objective="clead_released", eps=0.2, alpha=0.05, train_steps=3)
    return model, head, torch.rand(8, 1, 8, 8), cfg


def test_three_views_as_documented(setting):
    """(B, 3, C, H, W): view 1 is the anchor itself; view 2 differs from it for every image and stays
    in [0, 1]; view 3 is within eps of the anchor (L-inf), in [0, 1], and raises the contrastive term."""
    model, head, x, cfg = setting
    model.train()
    views = R.three_views(model, head, x, **attack_budget(cfg))
    assert views.shape == (8, 3, 1, 8, 8)
    assert torch.equal(views[:, 0], x)
    aug, adv = views[:, 1], views[:, 2]
    assert ((aug - x).flatten(1).abs().amax(1) > 1e-3).all() and aug.min() >= 0 and aug.max() <= 1
    assert (adv - x).abs().max() <= cfg.eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() > 0.5 * cfg.eps
    assert model.training                                   # the attack restored train mode
    with torch.no_grad():
        model.eval()
        z0 = embed(model, x, head)
        inner = R.contrastive_inner(z0, head)
        assert inner(model, adv, None).mean() > inner(model, x, None).mean()


def test_augment_flips_colour_images_only():
    """A left-right ramp: grey images are never mirrored (the ramp keeps rising), colour ones sometimes."""
    torch.manual_seed(0)
    ramp = torch.linspace(0.2, 0.8, 16).expand(64, 1, 16, 16)
    rises = lambda v: (v[..., -1] - v[..., 0]).mean((1, 2)) > 0      # noqa: E731
    assert rises(R.augment(ramp)).all()
    colour = R.augment(ramp.expand(64, 3, 16, 16).contiguous())
    assert 0 < (~rises(colour)).sum() < 64


def test_objective_trains_backbone_and_classifier_stage_trains_fc_only(setting, digits):
    """One step of the objective moves the backbone; its finishing stage (`train.finish`, the new
    classifier through the training loop) changes model.fc only."""
    model, head, x, cfg = setting
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss, logits = OBJECTIVES["clead_released"].step(model, x, torch.zeros(8, dtype=torch.long), cfg, head)
    assert loss.ndim == 0 and logits.shape == (8, 10)
    loss.backward()
    assert all(p.grad is not None for p in model.body.parameters())
    assert sum(p.grad.abs().sum() for p in model.body.parameters()) > 0
    assert all(p.grad is None for p in model.fc.parameters())          # the loss is label-free
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    from clead_edu import data as D
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    hist = T.finish(model, D.subset(digits.train, 128), TrainConfig(objective="clead_released", epochs=2),
                    progress=False)
    assert [h["stage"] for h in hist] == ["classifier", "classifier"]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(frozen[k], v)}
    assert changed == {"fc.weight", "fc.bias"}
    assert before.keys() == frozen.keys()


def test_pipeline_trains_each_start_first_and_starts_from_it(monkeypatch, tmp_path):
    """`run --objectives clead_released,clead_released[start=pgd_at,probe=adversarial]` trains
    standard and PGD-AT first (added), each released arm starts from its model's final weights,
    and ends with its probe."""
    assert pipeline.order(["pgd_at", "clead_released"]) == ["standard", "pgd_at", "clead_released"]
    assert pipeline.order(["clead_released", "standard"]) == ["standard", "clead_released"]
    assert pipeline.order(["pgd_at", "clead"]) == ["pgd_at", "clead"]
    assert pipeline.order(["clead_released[start=pgd_at]"]) == ["pgd_at", "clead_released[start=pgd_at]"]
    arms = ["clead_released", "clead_released[start=pgd_at,probe=adversarial]"]
    first, finals = {}, {}
    real_train = T.train

    def spy(model, train_set, cfg, **kw):
        out = real_train(model, train_set, cfg, **kw)
        finals[cfg.objective, cfg.start] = {k: v.clone() for k, v in model.state_dict().items()}
        return out

    def first_step(real):                 # the weights the first fine-tuning batch meets
        def step(model, x, y, cfg, head=None):
            first.setdefault((cfg.objective, cfg.start), {k: v.clone() for k, v in model.state_dict().items()})
            return real(model, x, y, cfg, head)
        return step
    monkeypatch.setattr(T, "train", spy)
    real = OBJECTIVES["clead_released"]
    monkeypatch.setitem(OBJECTIVES, "clead_released", replace(real, step=first_step(real.step)))
    from clead_edu import data as D
    cfg = D.from_preset("quick", "digits", epochs=1, train_n=100, eval_n=30, aa_n=0, train_steps=1)
    pipeline.run(cfg, tmp_path, objectives=arms, figures=False, progress=False)
    released = [("clead_released", ""), ("clead_released", "pgd_at")]
    assert list(finals) == [("standard", ""), ("pgd_at", ""), *released]
    for arm, source in zip(released, ["standard", "pgd_at"]):
        assert all(torch.equal(first[arm][k], finals[source, ""][k]) for k in finals[source, ""])
    stages = [json.loads((tmp_path / arm / "model.json").read_text())["history"][-1]["stage"] for arm in arms]
    assert stages == ["classifier", "adversarial classifier"]          # model.pt is the finished model


def test_lesson_trains_the_released_reading_from_its_standard_model(tmp_path):
    """L.model("clead_released") starts from L.model("standard"), ends with the classifier stage,
    and a second call loads the finished model."""
    import clead_edu as ce
    L = ce.setup("quick", "digits", epochs=1, run_dir=tmp_path, train_n=90, train_steps=1,
                 lr=0.04)                  # a TrainConfig no other test saves, so it is trained here
    model, hist = L.model("clead_released", progress=False)
    assert hist[-1]["stage"] == "classifier" and (tmp_path / "digits-quick").exists()
    again, _ = L.model("clead_released", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_batchnorm_statistics_move_only_with_the_training_forward(setting):
    """One step of the objective in train mode leaves the BatchNorm running statistics exactly
    where one train-mode forward of its 3B views leaves them (no extra forward of the anchors)."""
    model, head, x, cfg = setting
    twin = build_model("small_cnn", 10, 1, (0.3,), (0.37,))
    twin.load_state_dict(model.state_dict())
    model.train(), twin.train()
    torch.manual_seed(5)
    OBJECTIVES["clead_released"].step(model, x, torch.zeros(8, dtype=torch.long), cfg, head)
    torch.manual_seed(5)                      # the same random start and augmentation
    views = R.three_views(twin, head, x, **attack_budget(cfg))
    with torch.no_grad():
        twin.features(views.flatten(0, 1))
    buffers = dict(model.named_buffers())
    assert all(torch.equal(buffers[k], v) for k, v in twin.named_buffers())
    assert not torch.equal(buffers["body.0.1.running_mean"], build_model(
        "small_cnn", 10, 1, (0.3,), (0.37,)).state_dict()["body.0.1.running_mean"])


@pytest.mark.parametrize("reads, fc_learns, width", [("features", False, None), ("logits", True, 10)])
def test_head_reads_features_or_logits(setting, reads, fc_learns, width):
    """head_input: the head reads the penultimate features, or the classifier's K outputs,
    in which case the contrastive loss trains model.fc as part of the backbone."""
    model, _, x, cfg = setting
    cfg = replace(cfg, head_input=reads)
    head = make_head(model, cfg)
    assert head.in_features == (width or model.feature_dim)
    model.train()
    loss, logits = OBJECTIVES["clead_released"].step(model, x, torch.zeros(8, dtype=torch.long), cfg, head)
    loss.backward()
    assert logits.shape == (8, 10) and not logits.requires_grad
    assert (model.fc.weight.grad is not None and model.fc.weight.grad.abs().sum() > 0) == fc_learns
    with torch.no_grad():
        model.eval()
        expected = F.normalize(head(model(x) if reads == "logits" else model.features(x)), dim=1)
        assert torch.allclose(embed(model, x, head, reads), expected)


def test_adversarial_probe_trains_on_pgd_images(setting, digits):
    """The adversarial classifier step: PGD (the run's budget, against the whole model) on the
    probe's input, then cross-entropy of fc on the frozen features of those images."""
    model, _, _, cfg = setting
    from clead_edu import data as D
    x, y = D.take(digits.train, 16, 0)
    stage, step, params = R.new_classifier(model, replace(cfg, probe="adversarial"))
    assert stage == "adversarial classifier" and params == list(model.fc.parameters())
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(2)
    loss, logits = step(model, x, y, cfg)
    torch.manual_seed(2)
    x_adv = R.pgd(model, x, y, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.train_steps)
    assert (x_adv - x).abs().max() > 0.5 * cfg.eps
    model.eval()
    with torch.no_grad():
        assert torch.allclose(logits, model(x_adv), atol=1e-6)
        assert loss.item() == pytest.approx(F.cross_entropy(model(x_adv), y).item(), rel=1e-6)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # nothing moved yet
    with pytest.raises(ValueError, match="probe"):
        replace(cfg, probe="robust")


def test_classifier_stage_equals_a_plain_loop(digits, monkeypatch):
    """The finishing stage run by the training loop trains the classifier as a plain loop written
    out here does on the same batches: fc re-initialised with the run's seed, the run's SGD
    schedule, features frozen in eval mode (BatchNorm statistics untouched)."""
    from clead_edu import data as D
    batches, real = [], R.classifier_step

    def spy(model, x, y, cfg=None, head=None):
        batches.append((x, y))
        return real(model, x, y, cfg, head)
    monkeypatch.setattr(R, "classifier_step", spy)
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, (0.3,), (0.37,))
    cfg = TrainConfig(objective="clead_released", epochs=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    T.finish(model, D.subset(digits.train, 128), cfg, progress=False)
    plain = build_model("small_cnn", 10, 1, (0.3,), (0.37,))
    plain.load_state_dict(before)
    torch.manual_seed(cfg.seed)
    plain.fc.reset_parameters()
    opt, sched = T.make_optimizer(plain.fc.parameters(), cfg, len(batches) // cfg.epochs)
    plain.eval()
    for x, y in batches:
        with torch.no_grad():
            h = plain.features(x)
        loss = F.cross_entropy(plain.fc(h), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    assert len(batches) == 4
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.state_dict().values(), plain.state_dict().values()))
    assert not torch.equal(plain.fc.weight, before["fc.weight"])
