"""evaluate: per-example worst case, AutoAttack, eps curves, sanity checks that catch gradient masking."""

import pytest
import torch
import torch.nn as nn
from conftest import EPS

from clead_edu import evaluate as E


class Quantised(nn.Module):
    """Gradient masking: inputs rounded to 5 grey levels, so every input gradient is exactly zero."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 4) / 4)


@pytest.fixture(scope="session")
def report(pgd_at_model, batch):
    """robustness() of the PGD-AT model on 128 images, AutoAttack (quick) on the first 40."""
    x, y = batch
    return E.robustness(pgd_at_model, x, y, eps=EPS, pgd_steps=10, autoattack_version="quick", aa_n=40)


def test_worst_case_is_per_example_and(report):
    """worst_case is the per-example AND of every attack's correctness, on the AutoAttack images."""
    ok, n = report["correct"], report["worst_case_n"]
    assert n == 40 and set(ok) == {"clean", "fgsm", "pgd10", "autoattack", "worst_case"}
    expected = torch.ones(n, dtype=torch.bool)
    for name, mask in ok.items():
        if name != "worst_case":
            expected &= mask[:n]
    assert torch.equal(ok["worst_case"], expected)
    worst = report["accuracy"]["worst_case"]
    assert all(worst <= mask[:n].float().mean().item() for mask in ok.values())
    assert worst == pytest.approx(expected.float().mean().item())


def test_accuracies_are_consistent(report, pgd_at_model, batch):
    """Reported clean accuracy equals predict(); attacks do not exceed it."""
    x, y = batch
    acc = report["accuracy"]
    assert acc["clean"] == pytest.approx((E.predict(pgd_at_model, x) == y).float().mean().item())
    assert acc["pgd10"] <= acc["fgsm"] + 0.02 <= acc["clean"] + 0.02


def test_worst_case_function():
    """worst_case ANDs masks without modifying its inputs."""
    a = torch.tensor([True, True, False, True])
    b = torch.tensor([True, False, True, True])
    c = torch.tensor([True, True, True, False])
    out = E.worst_case({"a": a, "b": b, "c": c})
    assert out.tolist() == [True, False, False, False] and a.tolist() == [True, True, False, True]


def test_autoattack_quick(standard_model, pgd_at_model, report, batch):
    """Quick AutoAttack: standard model at eps 0.2 on 40 images <= clean and below the PGD-AT model."""
    x, y = batch
    ok, flags = E.autoattack(standard_model, x[:40], y[:40], eps=EPS, version="quick")
    assert ok.dtype == torch.bool and ok.shape == (40,) and isinstance(flags, list)
    clean = (E.predict(standard_model, x[:40]) == y[:40]).float().mean().item()
    std_acc = ok.float().mean().item()
    assert std_acc <= clean and std_acc < report["correct"]["autoattack"].float().mean().item()
    with pytest.raises(ValueError, match="version"):
        E.autoattack(standard_model, x[:4], y[:4], eps=EPS, version="fast")


@pytest.mark.parametrize("which", ["standard", "pgd_at"])
def test_eps_curve(which, standard_model, pgd_at_model, batch):
    """Accuracy vs eps starts at clean accuracy and does not increase (tolerance 0.02)."""
    model = {"standard": standard_model, "pgd_at": pgd_at_model}[which]
    x, y = batch
    curve = E.eps_curve(model, x, y, [0.0, 0.05, 0.1, 0.2, 0.3], steps=10)
    assert curve[0] == E.accuracy(model, x, y)
    assert all(b <= a + 0.02 for a, b in zip(curve, curve[1:]))
    assert curve[-1] < curve[0] - 0.3


def test_sanity_checks_pass_on_pgd_at(pgd_at_model, batch):
    """All sanity checks pass on an honestly trained PGD-AT model."""
    x, y = batch
    checks = E.sanity_checks(pgd_at_model, x, y, eps=EPS)
    assert len(checks) == 5 and all(c["passed"] for c in checks), checks


def test_sanity_checks_catch_gradient_masking(standard_model, batch):
    """A model with zero input gradients (quantised input) fails the very-large-eps check."""
    x, y = batch
    masked = Quantised(standard_model).eval()
    x_adv = E.attack_all(masked, x, y, E.fgsm, eps=EPS)
    assert torch.equal(x_adv, x)  # FGSM cannot move: the gradient is exactly zero
    checks = {c["check"]: c for c in E.sanity_checks(masked, x, y, eps=EPS)}
    assert not checks["very large eps reaches ~0"]["passed"], checks


def test_gradient_check_catches_zero_gradients(standard_model, batch):
    """An honest model passes the input-gradient check; a quantised-input model fails it."""
    from test_evaluate import Quantised
    x, y = batch
    assert E.gradient_check(standard_model, x, y)["passed"]
    failed = E.gradient_check(Quantised(standard_model).eval(), x, y)
    assert not failed["passed"] and "100.0%" in failed["detail"]


def test_attack_checks_compare_autoattack_with_pgd(pgd_at_model, batch):
    """On an honest model AutoAttack is not weaker than PGD; a faked weaker AutoAttack fails the check."""
    x, y = batch
    res = E.robustness(pgd_at_model, x[:64], y[:64], eps=EPS, pgd_steps=10, aa_n=64)
    checks = {c["check"]: c for c in E.attack_checks(res)}
    assert checks["AutoAttack not weaker than PGD"]["passed"], checks
    res["correct"]["autoattack"] = torch.ones(64, dtype=torch.bool)   # pretend AA broke nothing
    assert not {c["check"]: c for c in E.attack_checks(res)}["AutoAttack not weaker than PGD"]["passed"]


def test_restarts_only_lower_accuracy(pgd_at_model, batch):
    """PGD with 3 restarts (robust = survives all) is never above one run, per example."""
    from functools import partial
    x, y = batch
    torch.manual_seed(0)
    once = E.correct(pgd_at_model, x, y, partial(E.pgd, eps=EPS, steps=5))
    torch.manual_seed(0)
    three = E.correct_restarts(pgd_at_model, x, y, partial(E.pgd, eps=EPS, steps=5), restarts=3)
    assert not (three & ~once).any() and three.sum() <= once.sum()
