"""The controls that isolate the contrastive term: lam=0 with C-LEAD's BatchNorm handling, the
option under which it is PGD-AT exactly, and the joint-perturbation arm's attack."""
from dataclasses import replace

import pytest
import torch

from clead_edu import data as D
from clead_edu import train as T
from clead_edu.attacks import eval_mode, pgd
from clead_edu.config import TrainConfig
from clead_edu.losses import clead_joint_inner, embed, forward_views, supcon_loss
from clead_edu.models import build_model, model_for
from clead_edu.objectives import OBJECTIVES
from conftest import EPS

ONE_EPOCH = dict(epochs=1, batch_size=64, eps=EPS, alpha=0.05, train_steps=2, seed=3)


def trained_state(digits, objective: str, **changes) -> dict:
    """The state_dict (weights and BatchNorm buffers) after one epoch on 192 digits, seed 3."""
    torch.manual_seed(3)
    model = model_for(digits, "small_cnn")
    T.train(model, D.subset(digits.train, 192, 3), TrainConfig(objective=objective, **ONE_EPOCH, **changes),
            progress=False)
    return model.state_dict()


def differing(a: dict, b: dict) -> list[str]:
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_lam0_with_bn_stats_adv_only_is_pgd_at_exactly(digits):
    """Same seed, one epoch: with bn_stats_adv_only, clead with lam 0 (the control arm
    clead[lam=0]) ends with PGD-AT's weights and BatchNorm buffers bit for bit; without it the
    clean view's forward moves the running statistics, the attacks (eval mode) see other
    statistics, and they differ."""
    reference = trained_state(digits, "pgd_at")
    assert differing(trained_state(digits, "clead", lam=0.0, bn_stats_adv_only=True), reference) == []
    moved = differing(trained_state(digits, "clead", lam=0.0), reference)
    assert any("running_mean" in k for k in moved) and any(k.endswith("weight") for k in moved)


def test_the_lam0_arm_is_clead_at_lam_0_whatever_the_run_says(digits):
    """The control arm clead[lam=0] in a run at lam 1 trains C-LEAD at lam 0 (its own setting
    wins over the run's), which differs from C-LEAD at lam 1."""
    from clead_edu import data as ce_data, pipeline
    cfg = pipeline.arm_config(ce_data.from_preset("quick", "digits", lam=1.0), "clead[lam=0]")
    assert (cfg.objective, cfg.lam) == ("clead", 0.0)
    assert differing(trained_state(digits, "clead", lam=cfg.lam), trained_state(digits, "clead", lam=1.0))


def test_clean_forward_keeps_running_stats_but_uses_batch_stats():
    """forward_views with bn_stats_adv_only: the BatchNorm buffers move by the adversarial pass only (as
    one pass over x_adv alone moves them), while the clean view is still normalised with its own
    batch statistics (its output equals a train-mode pass, not an eval-mode one)."""
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, (0.3,), (0.37,)).train()
    x, x_adv = torch.rand(16, 1, 8, 8), torch.rand(16, 1, 8, 8)
    alone = build_model("small_cnn", 10, 1, (0.3,), (0.37,)).train()
    alone.load_state_dict(model.state_dict())
    with torch.no_grad():
        out = forward_views(model, x, x_adv, bn_stats_adv_only=True, features=True)
        alone.features(x_adv)
        assert differing(model.state_dict(), alone.state_dict()) == []
        with eval_mode(alone):
            eval_clean = alone.features(x)
        train_clean = alone.features(x)          # train mode: its own batch statistics
    assert torch.equal(out[:16], train_clean) and not torch.allclose(out[:16], eval_clean)


def test_bn_stats_adv_only_is_refused_with_one_joint_batch():
    with pytest.raises(ValueError, match="bn_stats_adv_only"):
        TrainConfig(joint_bn=True, bn_stats_adv_only=True)
    with pytest.raises(ValueError, match="bn_stats_adv_only"):
        TrainConfig(bn_stats_adv_only=1)


# ----------------------------------------------------------------------------- the joint-perturbation arm

def supcon_of(model, x, x_adv, y, tau=0.1) -> float:
    """SupCon of the batch's views [z(x); z(x_adv)] in eval mode."""
    with torch.no_grad(), eval_mode(model):
        return supcon_loss(torch.cat([embed(model, x), embed(model, x_adv)]), torch.cat([y, y]), tau).item()


@pytest.mark.parametrize("seed", [0, 1])
def test_joint_attack_raises_supcon_more_than_pgd(pgd_at_model, digits, seed):
    """On an adversarially trained model (what the training attack meets after the first
    epochs), at the same budget (eps 0.2, 5 steps of 0.05, same random start), the joint
    attack's views have a higher SupCon term than plain PGD's, and stay in the eps-ball and
    [0, 1]. (On a standard model plain PGD raises SupCon more: it carries the images into
    other classes, which SupCon's sign-gradient ascent does not find in 5 steps.)"""
    model = pgd_at_model
    x, y = D.take(digits.test, 64, seed)
    with torch.no_grad(), eval_mode(model):
        z_clean = embed(model, x)
    budget = dict(eps=EPS, alpha=0.05, steps=5)
    torch.manual_seed(seed)
    plain = pgd(model, x, y, **budget)
    torch.manual_seed(seed)
    joint = pgd(model, x, y, loss_fn=clead_joint_inner(z_clean, lam=1.0, tau=0.1), **budget)
    assert (joint - x).abs().max() <= EPS + 1e-6 and joint.min() >= 0 and joint.max() <= 1
    assert supcon_of(model, x, joint, y) > supcon_of(model, x, plain, y) + 0.03
    assert supcon_of(model, x, plain, y) > supcon_of(model, x, x, y)


def test_joint_inner_sums_to_the_outer_loss():
    """Per example, the joint inner loss is CE + lam * (l_i + l_{i+B}) / 2; its mean is CE's mean
    plus lam * SupCon of the batch (what the parameters minimise, mu = 0)."""
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, (0.3,), (0.37,)).eval()
    x, x_adv, y = torch.rand(8, 1, 8, 8), torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    with torch.no_grad():
        z_clean, z_adv = embed(model, x), embed(model, x_adv)
        per_example = clead_joint_inner(z_clean, lam=0.7, tau=0.2)(model, x_adv, y)
        ce = torch.nn.functional.cross_entropy(model(x_adv), y)
        sup = supcon_loss(torch.cat([z_clean, z_adv]), torch.cat([y, y]), 0.2)
    assert per_example.shape == (8,)
    assert per_example.mean().item() == pytest.approx((ce + 0.7 * sup).item(), rel=1e-5)


def test_joint_objective_trains(digits):
    """One step of clead_joint: a finite loss, logits on the adversarial images, gradients."""
    torch.manual_seed(0)
    model = model_for(digits, "small_cnn").train()
    x, y = D.take(digits.train, 32, 0)
    cfg = replace(TrainConfig(objective="clead_joint"), **{k: v for k, v in ONE_EPOCH.items() if k != "epochs"})
    loss, logits, terms = OBJECTIVES["clead_joint"].step(model, x, y, cfg)
    loss.backward()
    assert torch.isfinite(loss) and logits.shape == (32, 10) and model.fc.weight.grad.abs().sum() > 0
