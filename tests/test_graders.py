"""The code exercises' graders: each passes the worked solution (as in the teacher edition) and
stops the blank (the student edition's `...`) and at least two typical mistakes, each with
its own message. The graders are fed the functions directly (no notebook runs here)."""
import pytest
import torch
import torch.nn.functional as F

import clead_edu as ce
from clead_edu import graders  # noqa: F401  (registers every grader in GRADERS)
from clead_edu.exercises import GRADERS, ExerciseError, NotWrittenYet, grade


# ----------------------------------------------------------------------------- solutions
# The same code as the solution cells of the notebooks (# BEGIN SOLUTION ... # END SOLUTION).

def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def fgsm(model, x, y, eps, sign=1, clamp=True, detach=True, eval_mode=True):
    if eval_mode:
        model.eval()
    x = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    x_adv = x + sign * eps * grad.sign()
    x_adv = x_adv.clamp(0, 1) if clamp else x_adv
    return x_adv.detach() if detach else x_adv


def pgd_step(model, x, y, delta, eps, alpha, project=True, valid=True, use_sign=True):
    delta = delta.detach().requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(x + delta), y), delta)
    delta = delta + alpha * (grad.sign() if use_sign else grad)
    delta = delta.clamp(-eps, eps) if project else delta
    return ((x + delta).clamp(0, 1) - x).detach() if valid else delta.detach()


def pgd_at_step(model, opt, x, y, eps, alpha, steps, on_clean=False, zero_grad=True, train_mode=True):
    x_adv = x if on_clean else ce.pgd(model, x, y, eps=eps, alpha=alpha, steps=steps)
    model.train(train_mode)
    loss = F.cross_entropy(model(x_adv), y)
    if zero_grad:
        opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def supcon(z, labels, tau, positives="class", self_in_denominator=False, use_tau=True):
    n = len(z)
    idx = torch.arange(n)
    same, itself = labels[:, None] == labels[None, :], idx[:, None] == idx[None, :]
    if positives == "class":
        pos, denom = same & ~itself, (~itself if not self_in_denominator else torch.ones_like(itself))
    else:
        pos = idx[None, :] == ((idx + n // 2) % n)[:, None]
        denom = ~same | pos
    logits = z @ z.T / (tau if use_tau else 1.0)
    log_p = logits.masked_fill(~denom, float("-inf")).log_softmax(1)
    return -(torch.where(pos, log_p, 0.0).sum(1) / pos.sum(1)).mean()


def clead_loss(model, x, y, x_adv, lam, tau, adv_ce=True, normalise=True):
    h = torch.cat([model.features(x), model.features(x_adv)])
    z = F.normalize(h, dim=1) if normalise else h
    ce_part = F.cross_entropy(model(x_adv if adv_ce else x), y)
    return ce_part + lam * ce.losses.supcon_loss(z, torch.cat([y, y]), tau)


def worst_case(correct, how="all"):
    masks = torch.stack(list(correct.values()))
    if how == "inplace":
        out = correct["clean"]
        for m in correct.values():
            out &= m
        return out
    return {"all": masks.all(0), "any": masks.any(0), "mean": masks.float().mean(0)}[how]


def pair_distance(model, x, x_adv, normalise=True, dim=1, eval_mode=True, similarity=False):
    model.train(not eval_mode)
    with torch.no_grad():
        zc, za = model.features(x), model.features(x_adv)
    if normalise:
        zc, za = F.normalize(zc, dim=1), F.normalize(za, dim=1)
    cos = (zc * za).sum(dim)
    return (cos if similarity else 1 - cos).mean().item()


def paired_interval(a, b, paired=True, quantile=0.975, dof=1, z=False, percent=False):
    from scipy.stats import t
    n = len(a)
    d = [u - v for u, v in zip(a, b)] if paired else None
    mean = sum(a) / n - sum(b) / n
    var = (lambda v: sum((x - sum(v) / n) ** 2 for x in v) / (n - dof))
    se = (var(d) / n) ** 0.5 if paired else ((var(a) + var(b)) / n) ** 0.5
    q = 1.96 if z else t.ppf(quantile, n - 1 if paired else 2 * n - 2)
    return (100 * mean, 100 * q * se) if percent else (mean, q * se)


def blank(*args, **kwargs):
    """What the student edition's `def ...: ...` returns."""
    return None


# key: (solution, {mistake: (wrong function, words its message must contain)})
CASES = {
    "accuracy": (accuracy, {
        "count": (lambda m, x, y: accuracy(m, x, y) * len(y), "number of right answers"),
        "percent": (lambda m, x, y: 100 * accuracy(m, x, y), "percentage"),
        "train mode": (lambda m, x, y: (m.train()(x).argmax(1) == y).float().mean().item(), "train mode")}),
    "fgsm": (fgsm, {
        "gradient sign": (lambda *a: fgsm(*a, sign=-1), "steps down the loss"),
        "no clamp": (lambda *a: fgsm(*a, clamp=False), "leaves [0, 1]"),
        "no detach": (lambda *a: fgsm(*a, detach=False), "autograd graph"),
        "train mode": (lambda *a: fgsm(*a, eval_mode=False), "train mode")}),
    "pgd_step": (pgd_step, {
        "no projection": (lambda *a: pgd_step(*a, project=False), "leaves the eps-ball"),
        "no clamp": (lambda *a: pgd_step(*a, valid=False), "x + delta leaves [0, 1]"),
        "gradient, no sign": (lambda *a: pgd_step(*a, use_sign=False), "take its sign"),
        "descends": (lambda m, x, y, d, e, a: pgd_step(m, x, y, d, e, -a), "steps down the loss")}),
    "pgd_at_step": (pgd_at_step, {
        "clean images": (lambda *a: pgd_at_step(*a, on_clean=True), "clean images"),
        "no zero_grad": (lambda *a: pgd_at_step(*a, zero_grad=False), "old gradients"),
        "eval mode": (lambda *a: pgd_at_step(*a, train_mode=False), "differs"),
        "no step": (lambda m, o, *a: pgd_at_step(m, torch.optim.SGD(m.parameters(), lr=0.0), *a), "did not change")}),
    "supcon": (supcon, {
        "anchor in its denominator": (lambda *a: supcon(*a, self_in_denominator=True), "denominator"),
        "no tau": (lambda *a: supcon(*a, use_tau=False), "tau"),
        "pair like class": (lambda z, l, t, p: supcon(z, l, t, "class"), "positives='pair'"),
        ".item()": (lambda *a: supcon(*a).item(), "no gradient")}),
    "clead_loss": (clead_loss, {
        "clean CE": (lambda *a: clead_loss(*a, adv_ce=False), "clean images"),
        "not normalised": (lambda *a: clead_loss(*a, normalise=False), "not normalised"),
        "lam left out": (lambda m, x, y, xa, lam, tau: clead_loss(m, x, y, xa, 1.0, tau), "lam"),
        "tau left out": (lambda m, x, y, xa, lam, tau: clead_loss(m, x, y, xa, lam, 0.1), "tau")}),
    "worst_case": (worst_case, {
        "any": (lambda c: worst_case(c, "any"), "ANY attack"),
        "mean over attacks": (lambda c: worst_case(c, "mean"), "differs"),
        "in place": (lambda c: worst_case(c, "inplace"), "changed the masks"),
        "clean left out": (lambda c: worst_case({a: m for a, m in c.items() if a != "clean"}), "clean mask"),
        "wrong axis": (lambda c: torch.stack(list(c.values())).all(1), "shape")}),
    "pair_distance": (pair_distance, {
        "not normalised": (lambda *a: pair_distance(*a, normalise=False), "not normalised"),
        "wrong axis": (lambda *a: pair_distance(*a, dim=0), "over the images"),
        "train mode": (lambda *a: pair_distance(*a, eval_mode=False), "train mode"),
        "similarity": (lambda *a: pair_distance(*a, similarity=True), "1 - cos")}),
    "paired_interval": (paired_interval, {
        "unpaired": (lambda a, b: paired_interval(a, b, paired=False), "unpaired"),
        "one-sided quantile": (lambda a, b: paired_interval(a, b, quantile=0.95), "one-sided"),
        "normal quantile": (lambda a, b: paired_interval(a, b, z=True), "Student's t"),
        "population sd": (lambda a, b: paired_interval(a, b, dof=0), "n - 1"),
        "b - a": (lambda a, b: paired_interval(b, a), "a - b"),
        "percent": (lambda a, b: paired_interval(a, b, percent=True), "percent"),
        "the mean only": (lambda a, b: paired_interval(a, b)[0], "two numbers")}),
}
MISTAKES = [(key, name) for key, (_, wrong) in CASES.items() for name in wrong]


def test_every_exercise_has_a_case_and_at_least_two_mistakes():
    assert set(CASES) == set(GRADERS) and len(GRADERS) >= 7
    assert all(len(wrong) >= 2 for _, wrong in CASES.values())


@pytest.mark.parametrize("key", sorted(CASES))
def test_grader_passes_the_solution(key, capsys):
    assert grade(key, CASES[key][0]) is True
    assert f"exercise {key}: right!" in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(CASES))
def test_grader_stops_the_blank(key):
    with pytest.raises(NotWrittenYet, match=f"exercise {key}: not written yet"):
        grade(key, blank)


@pytest.mark.parametrize("key,mistake", MISTAKES, ids=[f"{k}-{m}" for k, m in MISTAKES])
def test_grader_stops_a_typical_mistake_and_names_it(key, mistake):
    wrong, words = CASES[key][1][mistake]
    with pytest.raises(ExerciseError) as err:
        grade(key, wrong)
    assert not isinstance(err.value, NotWrittenYet)
    assert f"exercise {key}: not quite" in str(err.value) and words in str(err.value)


def test_graders_leave_the_random_state_alone():
    """A grader in the middle of a lesson must not change the numbers the lesson shows after it."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for key, (solution, _) in CASES.items():
        grade(key, solution)
    assert torch.equal(torch.rand(3), expected)


def test_in_jupyter_the_message_replaces_the_traceback():
    with pytest.raises(ExerciseError) as err:
        grade("fgsm", blank)
    assert err.value._render_traceback_() == [f"NotWrittenYet: {err.value}"]


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="fgsm"):
        grade("fgsn", fgsm)
