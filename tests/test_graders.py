"""The code exercises' graders: each passes the worked solution (as in the teacher edition) and
stops the blank (the student edition's `...`), an answer that calls the package's own function,
and at least two typical mistakes, each with its own message and name. The graders are fed the
functions directly (no notebook runs here)."""
import pytest
import torch
import torch.nn.functional as F

import clead_edu as ce
from clead_edu import graders  # noqa: F401  (registers every grader in GRADERS)
from clead_edu.config import TrainConfig
from clead_edu.course import points
from clead_edu.exercises import EXERCISES, GRADERS, ExerciseError, NotWrittenYet, UsedPackage, grade, result


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
    if train_mode is not None:                    # None: the model.train() line left out
        model.train(train_mode)
    x_adv = x if on_clean else ce.pgd(model, x, y, eps=eps, alpha=alpha, steps=steps)
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


def clead_loss(model, x, y, x_adv, lam, tau, adv_ce=True, normalise=True, two_passes=True):
    h = torch.cat([model.features(x), model.features(x_adv)]) if two_passes else model.features(torch.cat([x, x_adv]))
    z = F.normalize(h, dim=1) if normalise else h
    ce_part = F.cross_entropy(model(x_adv if adv_ce else x) if two_passes else model.fc(h[len(x):]), y)
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


def paired_interval(a, b, paired=True, quantile=0.975, dof=1, z=False, percent=False, t_dof=-1, se=True):
    from scipy.stats import t
    n = len(a)
    d = [u - v for u, v in zip(a, b)] if paired else None
    mean = sum(a) / n - sum(b) / n
    var = (lambda v: sum((x - sum(v) / n) ** 2 for x in v) / (n - dof))
    se = ((var(d) / (n if se else 1)) ** 0.5) if paired else ((var(a) + var(b)) / n) ** 0.5
    q = 1.96 if z else t.ppf(quantile, n + t_dof if paired else 2 * n - 2)
    return (100 * mean, 100 * q * se) if percent else (mean, q * se)


def cross_entropy(logits, y, reduce="mean", log=True, dim=1):
    p = logits.log_softmax(dim) if log else logits.softmax(dim)
    picked = -p[torch.arange(len(y)), y]
    return picked.mean() if reduce == "mean" else picked.sum()


def trades_kl(logits_clean, logits_adv, reverse=False, reduce="batchmean"):
    p, q = (logits_adv, logits_clean) if reverse else (logits_clean, logits_adv)
    kl = p.softmax(1) * (p.log_softmax(1) - q.log_softmax(1))
    return {"batchmean": kl.sum(1).mean(), "mean": kl.mean(), "sum": kl.sum()}[reduce]


def similarities(h, dim=1, normalise=True, distance=False):
    z = F.normalize(h, dim=dim) if normalise else h
    cos = z @ z.T
    return 1 - cos if distance else cos


def clead_attack_loss(model, x_adv, y, z_clean, mu, reduction="none", normalise=True, sign=1, use_mu=True):
    h = model.features(x_adv)
    z_adv = F.normalize(h, dim=1) if normalise else h
    loss = F.cross_entropy(model.fc(h), y, reduction="none") + sign * (mu if use_mu else 1) * (1 - (z_clean * z_adv).sum(1))
    return loss.mean() if reduction == "mean" else loss


def in_ball(x, x_adv, eps, check_range=True, norm="linf", per_image=True):
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    ok = size <= eps + 1e-6
    if check_range:
        ok = ok & ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(1)
    return ok if per_image else ok.all()


def adv_nn_accuracy(z_clean, z_adv, y, twin_out=True, nearest=True, dim=1):
    sim = z_adv @ z_clean.T
    if twin_out:
        sim.fill_diagonal_(float("-inf") if nearest else float("inf"))
    idx = sim.argmax(dim) if nearest else sim.argmin(dim)
    return (y[idx] == y).float().mean().item()


def seeds_needed(sd, half_width, q=0.975, dof=1, normal=False):
    from scipy.stats import t
    n = 2
    while (1.96 if normal else t.ppf(q, n - dof)) * sd / n ** 0.5 > half_width:
        n += 1
    return n


def blank(*args, **kwargs):
    """What the student edition's `def ...: ...` returns."""
    return None


def run_epoch_step(model, opt, x, y, eps, alpha, steps):
    """pgd_at_step by one step of the package's ce.train.run_epoch: what the exercise asks to write."""
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    cfg = TrainConfig(objective="pgd_at", eps=eps, alpha=alpha, train_steps=steps)
    return ce.train.run_epoch([(x, y)], model, cfg, opt, sched, progress=False)["loss"]


def pgd_step_by_package(model, x, y, delta, eps, alpha):
    grad = ce.attacks.input_grad(model, ce.attacks.ce_loss, x + delta, y, targeted=False)[0]
    return ce.attacks.step_and_project(delta, grad, x, eps, alpha, "linf")


# key: answers that return the package's own function (the exercise asks to write it)
PACKAGE = {
    "accuracy": lambda m, x, y: ce.evaluate.accuracy(m, x, y),
    "fgsm": lambda m, x, y, e: ce.fgsm(m, x, y, eps=e),
    "pgd_step": pgd_step_by_package,
    "pgd_at_step": run_epoch_step,
    "supcon": lambda z, l, t, p: ce.losses.supcon_loss(z, l, t, p),
    "clead_loss": lambda m, x, y, xa, lam, tau: ce.losses.clead_loss(m, x, y, xa, lam=lam, tau=tau)[0],
    "worst_case": lambda c: ce.evaluate.worst_case(c),
    "pair_distance": lambda m, x, xa: ce.features.pair_metrics(ce.features.Pairs(
        ce.features.embed_images(m, x), ce.features.embed_images(m, xa), None, x, xa))["pair_distance"],
    "paired_interval": lambda a, b: ce.report.interval([u - v for u, v in zip(a, b)]),
    "cross_entropy": lambda logits, y: F.cross_entropy(logits, y),
    "trades_kl": lambda c, a: F.kl_div(a.log_softmax(1), c.softmax(1), reduction="batchmean"),
    "similarities": lambda h: F.cosine_similarity(h[:, None], h[None, :], dim=2),
    "clead_attack_loss": lambda m, xa, y, zc, mu: ce.losses.clead_inner(zc, mu)(m, xa, y),
    "in_ball": lambda x, xa, eps: (ce.attacks.project(xa - x, x, eps, "linf") == xa - x).flatten(1).all(1),
    "adv_nn_accuracy": lambda zc, za, y: (y[ce.features.nearest_other(za, zc)] == y).float().mean(),
    "seeds_needed": lambda sd, h: next(n for n in range(2, 99) if ce.report.interval([0.0, sd * 2 ** 0.5] + [sd / 2 ** 0.5] * (n - 2))[1] <= h),
}

# key: (solution, {mistake: (wrong function, words its message must contain, the mistake's name)})
CASES = {
    "accuracy": (accuracy, {
        "count": (lambda m, x, y: accuracy(m, x, y) * len(y), "number of right answers", "count"),
        "percent": (lambda m, x, y: 100 * accuracy(m, x, y), "percentage", "percent"),
        "train mode": (lambda m, x, y: (m.train()(x).argmax(1) == y).float().mean().item(), "train mode", "train-mode")}),
    "fgsm": (fgsm, {
        "gradient sign": (lambda *a: fgsm(*a, sign=-1), "steps down the loss", "wrong-sign"),
        "no clamp": (lambda *a: fgsm(*a, clamp=False), "leaves [0, 1]", "no-clamp"),
        "no detach": (lambda *a: fgsm(*a, detach=False), "autograd graph", "no-detach"),
        "train mode": (lambda *a: fgsm(*a, eval_mode=False), "train mode", "train-mode")}),
    "pgd_step": (pgd_step, {
        "no projection": (lambda *a: pgd_step(*a, project=False), "leaves the eps-ball", "no-projection"),
        "no clamp": (lambda *a: pgd_step(*a, valid=False), "x + delta leaves [0, 1]", "no-clamp"),
        "gradient, no sign": (lambda *a: pgd_step(*a, use_sign=False), "take its sign", "no-sign"),
        "descends": (lambda m, x, y, d, e, a: pgd_step(m, x, y, d, e, -a), "steps down the loss", "wrong-sign")}),
    "pgd_at_step": (pgd_at_step, {
        "clean images": (lambda *a: pgd_at_step(*a, on_clean=True), "clean images", "clean-images"),
        "no zero_grad": (lambda *a: pgd_at_step(*a, zero_grad=False), "old gradients", "stale-gradients"),
        "eval mode": (lambda *a: pgd_at_step(*a, train_mode=False), "eval mode", "eval-mode"),
        "no model.train()": (lambda *a: pgd_at_step(*a, train_mode=None), "model.train()", "eval-mode"),
        "no step": (lambda m, o, *a: pgd_at_step(m, torch.optim.SGD(m.parameters(), lr=0.0), *a), "did not change", "no-step")}),
    "supcon": (supcon, {
        "anchor in its denominator": (lambda *a: supcon(*a, self_in_denominator=True), "denominator", "anchor-in-denominator"),
        "no tau": (lambda *a: supcon(*a, use_tau=False), "tau", "no-tau"),
        "pair like class": (lambda z, l, t, p: supcon(z, l, t, "class"), "positives='pair'", "pair-as-class"),
        ".item()": (lambda *a: supcon(*a).item(), "no gradient", "no-gradient")}),
    "clead_loss": (clead_loss, {
        "clean CE": (lambda *a: clead_loss(*a, adv_ce=False), "clean images", "clean-ce"),
        "not normalised": (lambda *a: clead_loss(*a, normalise=False), "not normalised", "not-normalised"),
        "lam left out": (lambda m, x, y, xa, lam, tau: clead_loss(m, x, y, xa, 1.0, tau), "lam", "no-lam"),
        "tau left out": (lambda m, x, y, xa, lam, tau: clead_loss(m, x, y, xa, lam, 0.1), "tau", "no-tau"),
        "one joint forward": (lambda *a: clead_loss(*a, two_passes=False), "one forward pass", "one-forward"),
        ".item()": (lambda *a: clead_loss(*a).item(), "no gradient", "no-gradient")}),
    "worst_case": (worst_case, {
        "any": (lambda c: worst_case(c, "any"), "ANY attack", "any"),
        "mean over attacks": (lambda c: worst_case(c, "mean"), "differs", "wrong"),
        "in place": (lambda c: worst_case(c, "inplace"), "changed the masks", "changed-input"),
        "clean left out": (lambda c: worst_case({a: m for a, m in c.items() if a != "clean"}), "clean mask", "no-clean"),
        "wrong axis": (lambda c: torch.stack(list(c.values())).all(1), "shape", "shape")}),
    "pair_distance": (pair_distance, {
        "not normalised": (lambda *a: pair_distance(*a, normalise=False), "not normalised", "not-normalised"),
        "wrong axis": (lambda *a: pair_distance(*a, dim=0), "over the images", "wrong-axis"),
        "train mode": (lambda *a: pair_distance(*a, eval_mode=False), "train mode", "train-mode"),
        "similarity": (lambda *a: pair_distance(*a, similarity=True), "1 - cos", "similarity")}),
    "paired_interval": (paired_interval, {
        "unpaired": (lambda a, b: paired_interval(a, b, paired=False), "unpaired", "unpaired"),
        "one-sided quantile": (lambda a, b: paired_interval(a, b, quantile=0.95), "one-sided", "one-sided"),
        "normal quantile": (lambda a, b: paired_interval(a, b, z=True), "Student's t", "normal-quantile"),
        "population sd": (lambda a, b: paired_interval(a, b, dof=0), "n - 1", "population-sd"),
        "b - a": (lambda a, b: paired_interval(b, a), "a - b", "b-minus-a"),
        "percent": (lambda a, b: paired_interval(a, b, percent=True), "percent", "percent"),
        "n degrees of freedom": (lambda a, b: paired_interval(a, b, t_dof=0), "n degrees of freedom", "dof"),
        "sd, not the standard error": (lambda a, b: paired_interval(a, b, se=False), "standard error", "sd-not-se"),
        "the mean only": (lambda a, b: paired_interval(a, b)[0], "two numbers", "not-two-numbers")}),
    "cross_entropy": (cross_entropy, {
        "sum": (lambda l, y: cross_entropy(l, y, reduce="sum"), "sum over the batch", "sum"),
        "no log": (lambda l, y: cross_entropy(l, y, log=False), "its log", "no-log"),
        "dim 0": (lambda l, y: cross_entropy(l, y, dim=0), "dim=1", "wrong-axis")}),
    "trades_kl": (trades_kl, {
        "reversed": (lambda c, a: trades_kl(c, a, reverse=True), "KL(p_adv || p_clean)", "reversed"),
        "mean": (lambda c, a: trades_kl(c, a, reduce="mean"), "B * K", "mean-over-classes"),
        "sum": (lambda c, a: trades_kl(c, a, reduce="sum"), "sum over the batch", "sum-over-batch")}),
    "similarities": (similarities, {
        "not normalised": (lambda h: similarities(h, normalise=False), "normalise each row", "not-normalised"),
        "dim 0": (lambda h: similarities(h, dim=0), "over the images", "wrong-axis"),
        "distance": (lambda h: similarities(h, distance=True), "1 - cos", "distance"),
        "one row": (lambda h: similarities(h)[0], "shape", "shape")}),
    "clead_attack_loss": (clead_attack_loss, {
        "batch mean": (lambda *a: clead_attack_loss(*a, reduction="mean"), "each image", "batch-mean"),
        "not normalised": (lambda *a: clead_attack_loss(*a, normalise=False), "not normalised", "not-normalised"),
        "wrong sign": (lambda *a: clead_attack_loss(*a, sign=-1), "pushes them apart", "wrong-sign"),
        "no mu": (lambda *a: clead_attack_loss(*a, use_mu=False), "mu", "no-mu")}),
    "in_ball": (in_ball, {
        "no range": (lambda *a: in_ball(*a, check_range=False), "[0, 1]", "no-range"),
        "l2": (lambda *a: in_ball(*a, norm="l2"), "L2 norm", "l2"),
        "whole batch": (lambda *a: in_ball(*a, per_image=False), "whole batch", "whole-batch")}),
    "adv_nn_accuracy": (adv_nn_accuracy, {
        "twin in": (lambda *a: adv_nn_accuracy(*a, twin_out=False), "own clean twin", "twin-in"),
        "farthest": (lambda *a: adv_nn_accuracy(*a, nearest=False), "farthest", "farthest"),
        "dim 0": (lambda *a: adv_nn_accuracy(*a, dim=0), "dim 0", "wrong-axis")}),
    "seeds_needed": (seeds_needed, {
        "normal": (lambda sd, h: seeds_needed(sd, h, normal=True), "Student's t", "normal-quantile"),
        "one-sided": (lambda sd, h: seeds_needed(sd, h, q=0.95), "one-sided", "one-sided"),
        "n dof": (lambda sd, h: seeds_needed(sd, h, dof=0), "n degrees of freedom", "dof")}),
}
MISTAKES = [(key, name) for key, (_, wrong) in CASES.items() for name in wrong]
NAMED = {(key, named) for key, (_, wrong) in CASES.items() for _, _, named in wrong.values()}


def test_every_exercise_has_a_case_and_at_least_two_mistakes():
    assert set(CASES) == set(GRADERS) == set(PACKAGE) == set(EXERCISES) and len(GRADERS) >= 7
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
    wrong, words, named = CASES[key][1][mistake]
    with pytest.raises(ExerciseError) as err:
        grade(key, wrong)
    assert not isinstance(err.value, NotWrittenYet)
    assert f"exercise {key}: not quite" in str(err.value) and words in str(err.value)
    assert err.value.mistake == named


@pytest.mark.parametrize("key", sorted(CASES))
def test_grader_refuses_the_packages_own_function_and_restores_it(key):
    """An answer that returns the package's own function fails ('write it yourself'); after the
    grader the package's functions are the originals again."""
    before = {name: getattr(ce.attacks, name) for name in ("fgsm", "pgd", "project")} | {"ce.fgsm": ce.fgsm}
    with pytest.raises(UsedPackage, match=f"exercise {key}: write it yourself: (ce|F)\\.") as err:
        grade(key, PACKAGE[key])
    assert err.value.mistake == "package-function"
    assert {name: getattr(ce.attacks, name) for name in ("fgsm", "pgd", "project")} | {"ce.fgsm": ce.fgsm} == before
    assert grade(key, CASES[key][0]) is True        # and the solution, which does not call it, still passes


def test_a_name_imported_into_the_notebook_is_switched_off_too():
    """`from clead_edu.attacks import fgsm` in the notebook binds the function in the student's
    globals: that name is switched off as well, and restored after."""
    space = {"fgsm": ce.attacks.fgsm}
    exec("def my_fgsm(model, x, y, eps):\n    return fgsm(model, x, y, eps=eps)", space)
    with pytest.raises(UsedPackage, match="ce.attacks.fgsm is switched off while your my_fgsm is checked"):
        grade("fgsm", space["my_fgsm"])
    assert space["fgsm"] is ce.attacks.fgsm


def test_result_names_the_mistake_and_its_points_without_raising():
    table = points.load()
    right = result("fgsm", fgsm, table)
    assert right.passed and right.mistake == "" and right.points == right.max_points == table[("fgsm", "right")]
    wrong = result("fgsm", lambda *a: fgsm(*a, eval_mode=False), table)
    assert (wrong.passed, wrong.mistake, wrong.points) == (False, "train-mode", table[("fgsm", "train-mode")])
    assert "train mode" in wrong.message and 0 < wrong.points < wrong.max_points
    blank_result = result("fgsm", blank, table)
    assert blank_result.mistake == "not-written" and blank_result.points == 0
    raised = result("fgsm", lambda *a: 1 / 0, table)
    assert (raised.mistake, raised.points) == ("error", 0) and "ZeroDivisionError" in raised.message


def test_every_partial_credit_names_a_mistake_its_grader_reports():
    """A row of points.csv for a mistake no grader reports would never be used: a typo."""
    reported = NAMED | {(key, "package-function") for key in CASES} | {(key, "not-written") for key in CASES}
    partial = {(e, m) for e, m in points.load() if m != "right"}
    assert partial <= reported, partial - reported
    assert {e for e, m in points.load() if m == "right"} == set(GRADERS)


def test_points_table_errors_name_the_line(tmp_path):
    bad = tmp_path / "points.csv"
    bad.write_text("exercise,mistake,points\nfgsm,right,3\nfgsm,no-clamp,two\n")
    with pytest.raises(ValueError, match="line 3"):
        points.load(bad)
    bad.write_text("exercise,mistake,points\nfgsm,no-clamp,1\n")
    with pytest.raises(ValueError, match="no 'right' row .* fgsm"):
        points.load(bad)


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
