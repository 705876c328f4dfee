"""evaluate: per-example worst case, AutoAttack, eps curves, sanity checks that catch gradient masking."""

import pytest
import torch
import torch.nn as nn
from conftest import EPS

from clead_edu import data as D
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
    return E.robustness(pgd_at_model, x, y, eps=EPS, pgd_steps=10, autoattack="quick", aa_n=40)


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
    """'accuracy' puts every attack on the 40 AutoAttack images (one image set per row);
    'accuracy_eval' has clean/FGSM/PGD on all 128. Clean equals predict(); attacks do not exceed it."""
    x, y = batch
    ok = E.predict(pgd_at_model, x) == y
    acc, on_all = report["accuracy"], report["accuracy_eval"]
    assert report["eval_n"] == 128 and set(on_all) == {"clean", "fgsm", "pgd10"}
    assert acc["clean"] == pytest.approx(ok[:40].float().mean().item())
    assert on_all["clean"] == pytest.approx(ok.float().mean().item())
    assert acc["clean"] != pytest.approx(on_all["clean"])      # the two image sets differ here
    for name in ("fgsm", "pgd10"):
        assert acc[name] == pytest.approx(report["correct"][name][:40].float().mean().item())
        assert on_all[name] == pytest.approx(report["correct"][name].float().mean().item())
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
    ok, flags = E.run_autoattack(standard_model, x[:40], y[:40], eps=EPS, version="quick")
    assert ok.dtype == torch.bool and ok.shape == (40,) and isinstance(flags, list)
    clean = (E.predict(standard_model, x[:40]) == y[:40]).float().mean().item()
    std_acc = ok.float().mean().item()
    assert std_acc <= clean and std_acc < report["correct"]["autoattack"].float().mean().item()
    with pytest.raises(ValueError, match="version"):
        E.run_autoattack(standard_model, x[:4], y[:4], eps=EPS, version="fast")


@pytest.mark.parametrize("which", ["standard", "pgd_at"])
def test_eps_curve(which, standard_model, pgd_at_model, batch):
    """Accuracy vs eps starts at clean accuracy and does not increase (tolerance 0.02)."""
    model = {"standard": standard_model, "pgd_at": pgd_at_model}[which]
    x, y = batch
    curve = E.eps_curve(model, x, y, [0.0, 0.05, 0.1, 0.2, 0.3], steps=10)
    assert curve[0] == E.accuracy(model, x, y)
    assert all(b <= a + 0.02 for a, b in zip(curve, curve[1:]))
    assert curve[-1] < curve[0] - 0.3


def test_sanity_checks_pass_on_pgd_at(pgd_at_model, digits):
    """All sanity checks pass on an honestly trained PGD-AT model with a converged attack
    (PGD-50 against PGD-200), on all 359 digits test images.

    Not on 128: there PGD's random start alone moves the accuracy by about 3 images (PGD-50 gave
    0.562 to 0.586 over four RNG seeds, and PGD-200 0.555 once), as much as the check's 3-point
    tolerance, so on a machine whose arithmetic trains a slightly different model the check fails on
    noise; on all 359 images the same four seeds put PGD-200 at most 2.2 points below PGD-50."""
    x, y = D.take(digits.test, len(digits.test), seed=1)
    checks = E.sanity_checks(pgd_at_model, x, y, eps=EPS, steps=50, long_steps=200)
    assert len(checks) == 6 and all(c["passed"] for c in checks), checks


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


# ----------------------------------------------------------------------------- every check can fail

def noisy(model, x, y, *, eps, steps=10, **kw):
    """A broken attack: adds noise whatever eps is (so even at eps 0 it changes the image)."""
    return (x + 0.3 * torch.randn_like(x)).clamp(0, 1)


def backwards(model, x, y, *, eps, steps=10, **kw):
    """A broken attack whose radius shrinks as eps grows: 0.4 - eps (accuracy rises with eps)."""
    return E.pgd(model, x, y, eps=max(0.4 - eps, 0.0), steps=steps) if eps > 0 else x


def idle(model, x, y, *, eps, steps=10, **kw):
    """A broken attack that returns the clean images (weaker than FGSM)."""
    return x.clone()


def tiny_steps(model, x, y, *, eps, steps=10, **kw):
    """A weak PGD: step size eps/200 whatever the number of steps (20 steps cover a tenth of the ball)."""
    return E.pgd(model, x, y, eps=eps, steps=steps, alpha=eps / 200)


FAILS = {   # check -> (model fixture, attack, model wrapper) that is built to fail it
    "eps=0 equals clean": ("standard_model", noisy, None),
    "accuracy non-increasing in eps": ("standard_model", backwards, None),
    "PGD not weaker than FGSM": ("standard_model", idle, None),
    "PGD-10 converged (vs PGD-100)": ("pgd_at_model", tiny_steps, None),
    "very large eps reaches ~0": ("standard_model", E.pgd, Quantised),
    "input gradients not vanishing": ("standard_model", E.pgd, Quantised),
}


@pytest.mark.parametrize("check", list(FAILS))
def test_each_sanity_check_fails_when_built_to_fail(check, request, batch):
    """Each sanity check reports failure on a model or attack made to fail it, and passes on the
    same model with the honest PGD (for the masked model: on the unmasked one)."""
    fixture, attack, wrap = FAILS[check]
    model = request.getfixturevalue(fixture)
    x, y = batch
    broken = {c["check"]: c for c in E.sanity_checks(wrap(model).eval() if wrap else model, x, y,
                                                     eps=EPS, attack=attack)}
    assert check in broken and not broken[check]["passed"], broken[check]
    honest = {c["check"]: c for c in E.sanity_checks(model, x, y, eps=EPS)}
    assert honest[check]["passed"], honest[check]


def test_eps0_check_is_per_example(standard_model, batch):
    """An attack that, at eps 0, changes the prediction of misclassified images to another wrong
    class leaves the accuracy exactly as it was - an aggregate comparison passes - but the
    per-example check fails."""
    model = standard_model
    x, y = batch
    y = (y + 1) % 10                             # labels shifted, so that most predictions are wrong
    pred = E.predict(model, x)

    def relabel(model_, x_, y_, *, eps, steps=10, **kw):
        out = x_.clone()
        p = E.predict(model_, x_)
        for i in (p != y_).nonzero().flatten().tolist():
            other = ((p != y_[i]) & (p != p[i])).nonzero().flatten()
            if len(other):
                out[i] = x_[other[0]]
        return out
    x0 = relabel(model, x, y, eps=0.0)
    assert E.accuracy(model, x0, y) == E.accuracy(model, x, y)               # same accuracy ...
    assert (E.predict(model, x0) != pred).sum() > 10                          # ... other predictions
    checks = {c["check"]: c for c in E.sanity_checks(model, x, y, eps=EPS, attack=relabel)}
    assert not checks["eps=0 equals clean"]["passed"]


def test_attack_checks_fail_on_autoattack_flags(pgd_at_model, batch):
    """A result that carries an AutoAttack warning flag fails the flags check; none passes it."""
    x, y = batch
    res = E.robustness(pgd_at_model, x[:32], y[:32], eps=EPS, pgd_steps=5, aa_n=32)
    assert {c["check"]: c for c in E.attack_checks(res)}["no AutoAttack flags"]["passed"]
    res["autoattack_flags"] = ["it seems that the model has zero gradients"]
    failed = {c["check"]: c for c in E.attack_checks(res)}["no AutoAttack flags"]
    assert not failed["passed"] and "zero gradients" in failed["detail"]


def test_own_checks_raise_no_did_you_mean_warning(standard_model, batch, recwarn):
    """At MNIST-scale eps 0.3 the checks use 2 eps = 0.6 on purpose: no "did you mean /255" warning
    from the package's own sanity checks and eps curves; a user's own eps 0.6 still warns."""
    x, y = batch
    E.sanity_checks(standard_model, x[:32], y[:32], eps=0.3, steps=2, long_steps=4)
    E.eps_curve(standard_model, x[:32], y[:32], [0.0, 0.3, 0.6], steps=2)
    assert not [w for w in recwarn if "did you mean" in str(w.message)]
    with pytest.warns(UserWarning, match="did you mean"):
        E.pgd(standard_model, x[:4], y[:4], eps=0.6, steps=1)
