"""Graders for the notebooks' code exercises: the student's function against the package's own.

    def my_fgsm(model, x, y, eps):
        ...                                   # the student writes the body
    ce.exercises.grade("fgsm", my_fgsm)       # prints "right!", or stops and says what is wrong

Importing this module registers each grader under its key in `exercises.GRADERS`.

Each grader calls the student's function and the package's reference (`attacks`, `losses`,
`train`, `evaluate`, `features`, `report`) on the same small inputs: a freshly built small_cnn
(width 4, BatchNorm inside) or a tiny MLP on random 1x8x8 images, or a few per-seed accuracies. The inputs are chosen so that the
usual mistakes change the result: pixels near 0 and 1 (no clamp), steps that leave the ball
(no projection), stale gradients in the optimiser (no zero_grad), BatchNorm in train mode
(attack or evaluation not in eval mode), a model that arrives in eval mode where the lesson
says to switch to train mode, BatchNorm where one forward pass over both views differs from
two. A function whose body is still `...` returns None: "not written yet". While the student's
function runs (`exercises.call`), the package's functions the exercise asks to write are
switched off (`forbid`): an answer that returns `ce.fgsm(...)` fails with "write it yourself".
Each mistake a grader recognises has a short name ('no-clamp'), which `exercises.result`
reports and `course/points.csv` gives partial credit for. Graders run on the CPU in well under
a second and leave the global random state as they found it.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attacks, evaluate, features, losses, objectives, report, train
from .config import TrainConfig
from .exercises import as_tensor, call, check_written, compare, cpu64, fail, fixed_seed, grader, needs_grad, passed
from .models import Classifier, build_model

EPS, ALPHA = 0.1, 0.06        # radius and step of the attack exercises (pixel units)


def tiny_cnn(seed: int = 0, classes: int = 4) -> Classifier:
    """small_cnn of width 4 for 1x8x8 images (BatchNorm inside), in train mode."""
    with fixed_seed(seed):
        return build_model("small_cnn", classes, in_channels=1, width=4).train()


def tiny_mlp(seed: int = 0, classes: int = 3) -> Classifier:
    """normalize -> flatten -> linear(64, 16) -> tanh -> fc: no BatchNorm, so no mode matters."""
    with fixed_seed(seed):
        return Classifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh()), 16, classes, [0.5], [0.5])


def images(n: int = 16, classes: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """n random images (n, 1, 8, 8) uniform in [0, 1] and labels (n,) in range(classes)."""
    with fixed_seed(seed):
        return torch.rand(n, 1, 8, 8), torch.arange(n) % classes


def input_grad(model, x, y, mode: str = "eval") -> torch.Tensor:
    """The cross-entropy's gradient with respect to x (B, C, H, W), on a copy of the model in `mode`."""
    m = copy.deepcopy(model).train(mode == "train")
    return attacks.input_grad(m, attacks.ce_loss, x, y, targeted=False)[0]


# ----------------------------------------------------------------------------- the exercises

@grader("accuracy", "01", "my_accuracy", forbid=(evaluate.accuracy, evaluate.predict, evaluate.correct))
def grade_accuracy(fn) -> None:
    """my_accuracy(model, x, y) -> fraction in [0, 1], against evaluate.accuracy (model arrives in train mode)."""
    key, model, (x, _) = "accuracy", tiny_cnn(), images(40)
    y = evaluate.predict(model, x)
    y[::4] = (y[::4] + 1) % 4                       # labels: 3 of 4 as the model predicts in eval mode
    ref = evaluate.accuracy(model, x, y)
    with torch.no_grad():
        in_train_mode = (copy.deepcopy(model)(x).argmax(1) == y).float().mean()
    out = call(key, fn, model, x, y)
    check_written(key, out, "my_accuracy")
    compare(key, as_tensor(key, out), ref, {
        ("count", "that is the number of right answers, not the fraction"): ref * len(y),
        ("percent", "that is a percentage; return a fraction in [0, 1]"): 100 * ref,
        ("train-mode", "the predictions were made in train mode (BatchNorm used the batch's statistics)"): in_train_mode},
        "model.eval(), predict with logits.argmax(1) (one class per image), compare with y, take the mean")
    passed(key)


@grader("fgsm", "02", "my_fgsm", forbid=(attacks.fgsm, attacks.pgd))
def grade_fgsm(fn) -> None:
    """my_fgsm(model, x, y, eps) -> x_adv, against attacks.fgsm (the model arrives in train mode)."""
    key, model, (x, y) = "fgsm", tiny_cnn(), images()
    ref = attacks.fgsm(copy.deepcopy(model), x, y, eps=EPS)
    g, g_train = input_grad(model, x, y), input_grad(model, x, y, "train")
    out = call(key, fn, model, x.clone(), y, EPS)
    check_written(key, out, "my_fgsm")
    needs_grad(key, out, False, "x_adv")
    out = as_tensor(key, out, x.shape)
    if out.min() < 0 or out.max() > 1:
        fail(key, "x_adv leaves [0, 1]", "an image must stay an image: clamp it to [0, 1]", "no-clamp")
    compare(key, out, ref, {
        ("wrong-sign", "x_adv steps down the loss: FGSM steps up, along +sign(gradient)"): (x - EPS * g.sign()).clamp(0, 1),
        ("train-mode", "the gradient was taken in train mode (BatchNorm used the batch's statistics)"):
            (x + EPS * g_train.sign()).clamp(0, 1)},
        "model.eval(); the gradient of the cross-entropy w.r.t. the input; one step of eps along its sign")
    passed(key)


@grader("pgd_step", "02", "pgd_step", forbid=(attacks.step_and_project, attacks.project, attacks.pgd))
def grade_pgd_step(fn) -> None:
    """pgd_step(model, x, y, delta, eps, alpha) -> new delta, against attacks.step_and_project."""
    key, model, (x, y) = "pgd_step", tiny_cnn().eval(), images()
    with fixed_seed(2):
        delta = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1) - x
    g = input_grad(model, x + delta, y)
    ref = attacks.step_and_project(delta, g, x, EPS, ALPHA, "linf")
    out = call(key, fn, model, x.clone(), y, delta.clone(), EPS, ALPHA)
    check_written(key, out, "pgd_step")
    needs_grad(key, out, False, "the new delta")
    out = as_tensor(key, out, x.shape)
    if out.abs().max() > EPS + 1e-6:
        fail(key, "the new delta leaves the eps-ball", "project it back: clip it to [-eps, eps]", "no-projection")
    if (x + out).min() < -1e-6 or (x + out).max() > 1 + 1e-6:
        fail(key, "x + delta leaves [0, 1]", "after the clip, delta = (x + delta).clamp(0, 1) - x", "no-clamp")
    compare(key, out, ref, {
        ("wrong-sign", "it steps down the loss: PGD ascends, along +sign(gradient)"):
            attacks.step_and_project(delta, -g, x, EPS, ALPHA, "linf"),
        ("no-sign", "it steps along the gradient itself: take its sign"):     # g / B: the gradient of the batch mean
            attacks.project(delta + ALPHA * g / len(x), x, EPS, "linf")},
        "gradient of the cross-entropy at x + delta w.r.t. delta; delta + alpha * grad.sign(); then project")
    passed(key)


def state_close(a: nn.Module, b: nn.Module, atol: float = 1e-5) -> bool:
    """Whether two models have the same parameters and buffers (up to atol)."""
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.allclose(cpu64(sa[k]), cpu64(sb[k]), atol=atol) for k in sa)


@grader("pgd_at_step", "03", "pgd_at_step", forbid=(train.run_epoch,))
def grade_pgd_at_step(fn) -> None:
    """pgd_at_step(model, opt, x, y, eps, alpha, steps) -> loss, against one step of train.run_epoch
    (objective pgd_at). The model arrives in eval mode (the step must switch it to train mode)
    and the optimiser with stale gradients in it."""
    key, (x, y) = "pgd_at_step", images(32)
    models, opts = [tiny_cnn().eval(), tiny_cnn().eval()], []
    for m in models:
        opts.append(torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9))
        with fixed_seed(3):
            for p in m.parameters():
                p.grad = torch.randn_like(p)          # left over from an earlier step
    cfg = TrainConfig(objective="pgd_at", eps=EPS, alpha=ALPHA / 2, train_steps=3)
    with torch.no_grad():
        clean_loss = F.cross_entropy(copy.deepcopy(models[0]).train()(x), y)
    with fixed_seed(5):
        eval_loss = objectives.pgd_at(copy.deepcopy(models[0]), x, y, cfg)[0].detach()   # the model left in eval mode
    with fixed_seed(5):
        sched = torch.optim.lr_scheduler.LambdaLR(opts[0], lambda step: 1.0)
        ref = train.run_epoch([(x, y)], models[0], cfg, opts[0], sched, progress=False)["loss"]
    before = copy.deepcopy(models[1])
    with fixed_seed(5):
        out = call(key, fn, models[1], opts[1], x, y, cfg.eps, cfg.alpha, cfg.train_steps)
    check_written(key, out, "pgd_at_step")
    hint = ("model.train(); x_adv from PGD (it switches to eval mode itself); the loss on x_adv; "
            "opt.zero_grad(), loss.backward(), opt.step(); return the loss")
    compare(key, as_tensor(key, out), ref, {
        ("clean-images", "the loss is the cross-entropy on the clean images: PGD-AT trains on x_adv"): clean_loss,
        ("eval-mode", "the loss was computed in eval mode: the step must put the model in train mode "
                      "(model.train()) before its forward pass on x_adv"): eval_loss}, hint, atol=1e-4)
    if all(torch.equal(a, b) for a, b in zip(before.parameters(), models[1].parameters())):
        fail(key, "the model did not change", "after loss.backward(), opt.step() updates the parameters", "no-step")
    if not state_close(models[0], models[1]):
        fail(key, "the loss is right but the update is not: did the old gradients stay in?", hint, "stale-gradients")
    passed(key)


def supcon_self_in_denominator(z: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """SupCon (positives 'class') with the anchor left in its own denominator: a usual mistake."""
    itself = torch.eye(len(z), dtype=torch.bool)
    pos = (labels[:, None] == labels[None, :]) & ~itself
    log_p = (z @ z.T / tau).log_softmax(1)
    return -(torch.where(pos, log_p, 0.0).sum(1) / pos.sum(1)).mean()


@grader("supcon", "04", "my_supcon", forbid=(losses.supcon_loss,))
def grade_supcon(fn) -> None:
    """my_supcon(z, labels, tau, positives) -> loss, against losses.supcon_loss, for both kinds of positives."""
    key = "supcon"
    with fixed_seed(4):
        z, y = F.normalize(torch.randn(16, 8), dim=1), torch.randint(0, 3, (8,))
    labels = torch.cat([y, y])
    hints = {"class": "positives: every other view of the anchor's class (twin included); denominator: every "
                      "view but the anchor itself; the mean of -log p over the positives, then over the anchors",
             "pair": "the twin of view i is view (i + B) mod 2B, its only positive; the other views of its "
                     "class leave the denominator"}
    for positives, tau in (("class", 0.1), ("pair", 0.1), ("class", 0.5)):
        out = call(key, fn, z.clone().requires_grad_(True), labels, tau, positives)
        check_written(key, out, "my_supcon")
        needs_grad(key, out, True, "the loss")
        hint = hints[positives] if tau == 0.1 else "divide the similarities by tau"
        mistakes = {("no-tau", "the similarities are not divided by tau"): losses.supcon_loss(z, labels, 1.0, positives)}
        if positives == "class":
            mistakes[("anchor-in-denominator", "the anchor is in its own denominator")] = \
                supcon_self_in_denominator(z, labels, tau)
        else:
            mistakes[("pair-as-class", "with positives='pair' the other views of the class are positives too")] = \
                losses.supcon_loss(z, labels, tau, "class")
        compare(key, as_tensor(key, out), losses.supcon_loss(z, labels, tau, positives), mistakes,
                f"(positives={positives!r}, tau={tau}) {hint}")
    passed(key)


@grader("clead_loss", "05", "my_clead_loss", forbid=(losses.clead_loss,))
def grade_clead_loss(fn) -> None:
    """my_clead_loss(model, x, y, x_adv, lam, tau) -> loss, against losses.clead_loss: a small_cnn
    in train mode, so BatchNorm tells two forward passes (one per view) from one over [x; x_adv].
    losses.supcon_loss may be used (the building block of notebook 04)."""
    key, model, (x, y), lam, tau = "clead_loss", tiny_cnn(classes=3), images(12, classes=3), 0.5, 0.2
    with fixed_seed(6):
        x_adv = (x + EPS * torch.randn_like(x).sign()).clamp(0, 1)
    yy = torch.cat([y, y])
    with torch.no_grad():
        ref = losses.clead_loss(copy.deepcopy(model), x, y, x_adv, lam=lam, tau=tau)[0]
        m = copy.deepcopy(model)
        h, ce_adv = torch.cat([m.features(x), m.features(x_adv)]), F.cross_entropy(m(x_adv), y)
        con = losses.supcon_loss(F.normalize(h, dim=1), yy, tau)
        joint = losses.clead_loss(copy.deepcopy(model), x, y, x_adv, lam=lam, tau=tau, joint_bn=True)[0]
        h_joint = m.features(torch.cat([x, x_adv]))
        one_pass = "one forward pass over [x; x_adv] mixes the two views in BatchNorm's batch statistics: " \
                   "run the clean and the adversarial view separately"
        mistakes = [(("clean-ce", "the cross-entropy is on the clean images: C-LEAD classifies x_adv"),
                     F.cross_entropy(m(x), y) + lam * con),
                    (("one-forward", one_pass), joint),
                    (("one-forward", one_pass), ce_adv + lam * losses.supcon_loss(F.normalize(h_joint, dim=1), yy, tau)),
                    (("not-normalised", "the features are not normalised before SupCon"),
                     ce_adv + lam * losses.supcon_loss(h, yy, tau)),
                    (("no-lam", "lam does not weight the contrastive term"), ce_adv + con),
                    (("no-tau", "SupCon does not use the tau it was given"),
                     ce_adv + lam * losses.supcon_loss(F.normalize(h, dim=1), yy))]
    out = call(key, fn, model, x, y, x_adv, lam, tau)
    check_written(key, out, "my_clead_loss")
    needs_grad(key, out, True, "the loss")
    compare(key, as_tensor(key, out), ref, mistakes, "CE(model(x_adv), y) + lam * SupCon(z, labels, tau) with "
            "z = normalize(features of x and of x_adv, two forward passes) and labels = [y; y]")
    passed(key)


@grader("worst_case", "06", "my_worst_case", forbid=(evaluate.worst_case,))
def grade_worst_case(fn) -> None:
    """my_worst_case({attack: correct (N,) bool}) -> (N,) bool, against evaluate.worst_case."""
    key = "worst_case"
    with fixed_seed(7):
        masks = {a: torch.rand(40) < p for a, p in [("clean", 0.9), ("fgsm", 0.7), ("pgd20", 0.5), ("autoattack", 0.45)]}
    masks["clean"][:2], masks["fgsm"][:2], masks["pgd20"][:2], masks["autoattack"][:2] = False, True, True, True
    given = {a: m.clone() for a, m in masks.items()}
    out = call(key, fn, given)
    check_written(key, out, "my_worst_case")
    if any(not torch.equal(given[a], masks[a]) for a in masks):
        fail(key, "your function changed the masks it was given (an in-place &= ?)", "start from a copy: .clone()",
             "changed-input")
    stacked = torch.stack(list(masks.values()))
    compare(key, as_tensor(key, out, (40,)), evaluate.worst_case(masks), {
        ("any", "an image counts as robust if it survives ANY attack; it must survive every one"): stacked.any(0),
        ("majority", "that is a majority vote over the attacks"): stacked.float().mean(0) >= 0.5,
        ("no-clean", "the clean mask is left out: an image wrong when clean is not robust"): stacked[1:].all(0)},
        "per image, AND over every mask in the dict (clean included)")
    passed(key)


@grader("pair_distance", "07", "my_pair_distance", forbid=(features.pair_metrics, features.embed_images))
def grade_pair_distance(fn) -> None:
    """my_pair_distance(model, x, x_adv) -> mean cosine distance between twins, against
    features.pair_metrics (the model arrives in train mode)."""
    key, model, (x, y) = "pair_distance", tiny_cnn(), images(24)
    with fixed_seed(8):
        x_adv = (x + EPS * torch.randn_like(x).sign()).clamp(0, 1)
    zc, za = features.embed_images(model, x), features.embed_images(model, x_adv)
    ref = features.pair_metrics(features.Pairs(zc, za, y, x, x_adv))["pair_distance"]
    with torch.no_grad(), attacks.eval_mode(model):
        hc, ha = model.features(x), model.features(x_adv)
        zc_train, za_train = (F.normalize(copy.deepcopy(model).train().features(v), dim=1) for v in (x, x_adv))
    out = call(key, fn, model, x, x_adv)
    check_written(key, out, "my_pair_distance")
    compare(key, as_tensor(key, out), ref, {
        ("similarity", "that is the mean cosine similarity; the distance is 1 - cos"): 1 - ref,
        ("not-normalised", "the features are not normalised: a dot product is a cosine only for unit vectors"):
            (1 - (hc * ha).sum(1)).mean(),
        ("wrong-axis", "the sum runs over the images instead of the features (dim=1)"): (1 - (zc * za).sum(0)).mean(),
        ("train-mode", "the features were computed in train mode (BatchNorm used the batch's statistics)"):
            (1 - (zc_train * za_train).sum(1)).mean()},
        "model.eval(); z = F.normalize(model.features(.), dim=1) for x and x_adv; mean over images of 1 - (z_c * z_a).sum(1)")
    passed(key)


def interval_mistakes(a: list[float], b: list[float]) -> dict:
    """The usual wrong (mean, half-width) pairs for the paired 95% interval of a - b (n seeds)."""
    from scipy.stats import t
    def sd(v, dof=1):                       # the standard deviation, divided by n - dof
        return (sum((x - sum(v) / n) ** 2 for x in v) / (n - dof)) ** 0.5
    n, d = len(a), [u - v for u, v in zip(a, b)]
    mean, half = report.interval(d)
    se, t95 = sd(d) / n ** 0.5, t.ppf(0.975, n - 1)
    return {("b-minus-a", "the difference is a - b (the defense minus the baseline), not b - a"): (-mean, half),
            ("percent", "that is in percent; return fractions, as a and b are"): (100 * mean, 100 * half),
            ("unpaired", "the seeds were treated as unpaired (two independent samples): pair them, a[i] - b[i]"):
                (mean, t.ppf(0.975, 2 * n - 2) * ((sd(a) ** 2 + sd(b) ** 2) / n) ** 0.5),
            ("unpaired", "the two intervals were combined as if unpaired: take the interval of the differences"):
                (mean, report.interval(a)[1] + report.interval(b)[1]),
            ("normal-quantile", "1.96 is the normal quantile; with n seeds use Student's t with n - 1 degrees of freedom"):
                (mean, 1.96 * se),
            ("one-sided", "t.ppf(0.95, ...) is the one-sided quantile (a 90% interval); "
                          "a 95% interval needs t.ppf(0.975, n - 1)"): (mean, t.ppf(0.95, n - 1) * se),
            ("dof", "the t quantile has n degrees of freedom; it needs n - 1"): (mean, t.ppf(0.975, n) * se),
            ("population-sd", "the standard deviation divides by n; the sample standard deviation divides by n - 1"):
                (mean, t95 * sd(d, 0) / n ** 0.5),
            ("sd-not-se", "that is t times the standard deviation; the half-width uses the standard error, sd / sqrt(n)"):
                (mean, t95 * sd(d))}


@grader("paired_interval", "08", "my_paired_interval", forbid=(report.interval,))
def grade_paired_interval(fn) -> None:
    """my_paired_interval(a, b) -> (mean of a - b, half-width of its 95% Student-t interval),
    a and b per-seed values (lists of floats, same seeds), against report.interval of the differences."""
    key = "paired_interval"
    hint = ("d = a[i] - b[i] per seed; mean of d; half-width t.ppf(0.975, n - 1) * sd(d) / sqrt(n), "
            "with the sample standard deviation (n - 1)")
    for a, b in (([0.30, 0.26, 0.34, 0.28], [0.27, 0.245, 0.30, 0.265]), ([0.25, 0.21, 0.29], [0.26, 0.23, 0.28])):
        out = call(key, fn, list(a), list(b))
        check_written(key, out, "my_paired_interval")
        try:
            got = torch.tensor([float(v) for v in out], dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            got = torch.zeros(0)
        if got.shape != (2,):
            fail(key, "return two numbers: (mean difference, half-width)", hint, "not-two-numbers")
        compare(key, got, report.interval([u - v for u, v in zip(a, b)]),
                {m: torch.tensor(w) for m, w in interval_mistakes(a, b).items()}, f"(n = {len(a)} seeds) {hint}")
    passed(key)


# ----------------------------------------------------------------------------- more practice

@grader("cross_entropy", "01", "my_cross_entropy", forbid=(F.cross_entropy, F.nll_loss))
def grade_cross_entropy(fn) -> None:
    """my_cross_entropy(logits (B, K), y (B,)) -> the mean over the batch of -log softmax(logits)[i, y_i],
    against F.cross_entropy (which is switched off while the student's function runs)."""
    key = "cross_entropy"
    with fixed_seed(9):
        logits, y = 3 * torch.randn(10, 4), torch.randint(0, 4, (10,))
    ref = F.cross_entropy(logits, y)
    picked = torch.arange(len(y)), y
    out = call(key, fn, logits.clone(), y.clone())
    check_written(key, out, "my_cross_entropy")
    compare(key, as_tensor(key, out), ref, {
        ("sum", "that is the sum over the batch; the loss is the mean"): ref * len(y),
        ("no-log", "that is minus the probability of the label; the loss is minus its log"):
            -logits.softmax(1)[picked].mean(),
        ("wrong-axis", "the softmax runs over the images (dim=0); it runs over the classes, dim=1"):
            -logits.log_softmax(0)[picked].mean()},
        "log_softmax over the classes (dim=1), pick each image's label, minus the mean over the batch")
    passed(key)


@grader("trades_kl", "03", "my_trades_kl", forbid=(losses.trades_loss, losses.trades_inner, F.kl_div))
def grade_trades_kl(fn) -> None:
    """my_trades_kl(logits_clean, logits_adv (B, K)) -> KL(p_clean || p_adv) summed over classes and
    averaged over the batch, as in losses.trades_loss."""
    key = "trades_kl"
    with fixed_seed(10):
        clean, adv = 2 * torch.randn(12, 5), 2 * torch.randn(12, 5)
    def kl(p_logits, q_logits):          # (B,): KL(softmax(p) || softmax(q)) per image
        return (p_logits.softmax(1) * (p_logits.log_softmax(1) - q_logits.log_softmax(1))).sum(1)
    ref = kl(clean, adv).mean()
    out = call(key, fn, clean.clone(), adv.clone())
    check_written(key, out, "my_trades_kl")
    compare(key, as_tensor(key, out), ref, {
        ("reversed", "that is KL(p_adv || p_clean); TRADES takes KL(p_clean || p_adv)"): kl(adv, clean).mean(),
        ("mean-over-classes", "that divides by B * K (reduction='mean'); sum over the classes, mean over the batch"):
            ref / clean.shape[1],
        ("sum-over-batch", "that is the sum over the batch; take the mean over the images"): ref * len(clean)},
        "p = softmax(logits_clean); sum_k p_k (log p_k - log_softmax(logits_adv)_k) per image; mean over images")
    passed(key)


@grader("similarities", "04", "my_similarities", forbid=(F.cosine_similarity,))
def grade_similarities(fn) -> None:
    """my_similarities(h (N, D)) -> (N, N) cosine similarities between the rows of h."""
    key = "similarities"
    with fixed_seed(11):
        h = torch.randn(6, 5) * torch.tensor([[0.5], [2.0], [1.0], [3.0], [0.7], [1.5]])
    z = F.normalize(h, dim=1)
    ref = z @ z.T
    out = call(key, fn, h.clone())
    check_written(key, out, "my_similarities")
    zc = F.normalize(h, dim=0)
    compare(key, as_tensor(key, out, (6, 6)), ref, {
        ("not-normalised", "those are dot products of the raw features: normalise each row first"): h @ h.T,
        ("wrong-axis", "the features were normalised over the images (dim=0); normalise each row (dim=1)"): zc @ zc.T,
        ("distance", "that is the cosine distance 1 - cos; return the similarity"): 1 - ref},
        "z = h / its row norms (F.normalize(h, dim=1)); then z @ z.T")
    passed(key)


@grader("clead_attack_loss", "05", "my_clead_attack_loss", forbid=(losses.clead_inner, losses.embed))
def grade_clead_attack_loss(fn) -> None:
    """my_clead_attack_loss(model, x_adv, y, z_clean, mu) -> (B,) per image
    CE(f(x_adv), y) + mu * (1 - cos(z_clean, z(x_adv))), against losses.clead_inner (model in eval mode)."""
    key, model, (x, y), mu = "clead_attack_loss", tiny_cnn().eval(), images(10), 2.0
    with fixed_seed(12):
        x_adv = (x + EPS * torch.randn_like(x).sign()).clamp(0, 1)
    with torch.no_grad():
        z_clean = F.normalize(model.features(x), dim=1)
        ref = losses.clead_inner(z_clean, mu)(model, x_adv, y)
        h = model.features(x_adv)
        ce_part, cos = F.cross_entropy(model.fc(h), y, reduction="none"), (z_clean * F.normalize(h, dim=1)).sum(1)
    out = call(key, fn, model, x_adv.clone(), y, z_clean.clone(), mu)
    check_written(key, out, "my_clead_attack_loss")
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        fail(key, "that is one number for the batch; PGD needs the loss of each image (B,)",
             "F.cross_entropy(..., reduction='none')", "batch-mean")
    compare(key, as_tensor(key, out, (10,)), ref, {
        ("not-normalised", "z(x_adv) is not normalised, so (z_clean * h).sum(1) is not a cosine"):
            ce_part + mu * (1 - (z_clean * h).sum(1)),
        ("wrong-sign", "the representation term pulls the twins together; the attack pushes them apart: + mu * (1 - cos)"):
            ce_part - mu * (1 - cos),
        ("no-mu", "mu does not weight the representation term"): ce_part + (1 - cos)},
        "h = model.features(x_adv); CE(model.fc(h), y, reduction='none') + mu * (1 - (z_clean * normalize(h)).sum(1))")
    passed(key)


@grader("in_ball", "06", "my_in_ball", forbid=(attacks.project, attacks.step_and_project))
def grade_in_ball(fn) -> None:
    """my_in_ball(x, x_adv, eps) -> (N,) bool: x_adv within eps of x in every pixel (L-inf, up to
    1e-6) and inside [0, 1]: the sanity check that an attack respected its threat model."""
    key, (x, _) = "in_ball", images(8)
    with fixed_seed(13):
        x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1)
    x_adv[1, 0, 0, 0] = x[1, 0, 0, 0] + 2 * EPS          # one pixel out of the ball
    x_adv[2] = x[2] + 0.9 * EPS * torch.where(x[2] > 0.5, 1.0, -1.0)   # leaves [0, 1]: 0.9 eps, but past the edges
    x_adv[3] = (x[3] + EPS).clamp(0, 1)                  # every pixel moved by (up to) eps: in the ball, large L2
    d = (x_adv - x).flatten(1)
    in_range = ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(1)
    ref = (d.abs().amax(1) <= EPS + 1e-6) & in_range
    out = call(key, fn, x.clone(), x_adv.clone(), EPS)
    check_written(key, out, "my_in_ball")
    if torch.as_tensor(out).numel() == 1:
        fail(key, "that is one answer for the whole batch; return one per image (N,)", "reduce over dim 1 only",
             "whole-batch")
    compare(key, as_tensor(key, out, (8,)).bool(), ref, {
        ("no-range", "an image outside [0, 1] is not an image: check the range too"): d.abs().amax(1) <= EPS + 1e-6,
        ("l2", "that measures the L2 norm; the threat model is L-inf, the largest pixel change"):
            (d.norm(dim=1) <= EPS + 1e-6) & in_range},
        "per image: (x_adv - x).abs() flattened, its max <= eps, and x_adv within [0, 1]")
    passed(key)


@grader("adv_nn_accuracy", "07", "my_adv_nn_accuracy", forbid=(features.nearest_other, features.pair_metrics))
def grade_adv_nn_accuracy(fn) -> None:
    """my_adv_nn_accuracy(z_clean, z_adv (N, D) unit rows, y (N,)) -> the share of adversarial z whose
    nearest clean z (cosine), its own twin left out, has the image's label; against features.pair_metrics."""
    key = "adv_nn_accuracy"
    with fixed_seed(16):
        y = torch.arange(20) % 4
        centre = F.normalize(torch.randn(4, 6), dim=1)
        zc = F.normalize(centre[y] + 0.6 * torch.randn(20, 6), dim=1)
        za = F.normalize(zc + 0.5 * torch.randn(20, 6), dim=1)
    ref = features.pair_metrics(features.Pairs(zc, za, y, None, None))["adv_nn_accuracy"]
    sim = za @ zc.T
    out = call(key, fn, zc.clone(), za.clone(), y.clone())
    check_written(key, out, "my_adv_nn_accuracy")
    off = sim.clone().fill_diagonal_(float("-inf"))
    far = sim.clone().fill_diagonal_(float("inf"))
    compare(key, as_tensor(key, out), ref, {
        ("twin-in", "the adversarial image's own clean twin was left in: it is nearly always nearest"):
            (y[sim.argmax(1)] == y).float().mean(),
        ("farthest", "argmin picks the farthest clean image; the nearest has the largest cosine"):
            (y[far.argmin(1)] == y).float().mean(),
        ("wrong-axis", "argmax over dim 0 looks for the nearest adversarial z of each clean one"):
            (y[off.argmax(0)] == y).float().mean()},
        "sim = z_adv @ z_clean.T; its diagonal (the twins) to -inf; nearest = sim.argmax(1); mean of y[nearest] == y")
    passed(key)


def seeds_for(sd: float, half: float, q: float = 0.975, dof: int = -1, normal: bool = False) -> int:
    """The smallest n >= 2 whose 95% half-width t.ppf(q, n + dof) * sd / sqrt(n) is at most `half`."""
    from scipy.stats import t
    n = 2
    while (1.96 if normal else t.ppf(q, n + dof)) * sd / n ** 0.5 > half:
        n += 1
    return n


@grader("seeds_needed", "08", "my_seeds_needed", forbid=(report.interval,))
def grade_seeds_needed(fn) -> None:
    """my_seeds_needed(sd, half_width) -> the smallest number of seeds n >= 2 whose 95% Student-t
    half-width t.ppf(0.975, n - 1) * sd / sqrt(n) is at most half_width."""
    key = "seeds_needed"
    hint = "try n = 2, 3, ...: half-width t.ppf(0.975, n - 1) * sd / sqrt(n); stop at the first n where it is <= half_width"
    for sd, half in ((0.02, 0.02), (0.05, 0.03)):
        out = call(key, fn, sd, half)
        check_written(key, out, "my_seeds_needed")
        compare(key, cpu64(as_tensor(key, out)), seeds_for(sd, half), {
            ("normal-quantile", "1.96 is the normal quantile; with n seeds use Student's t with n - 1 degrees of freedom"):
                seeds_for(sd, half, normal=True),
            ("one-sided", "t.ppf(0.95, ...) is the one-sided quantile; a 95% interval needs t.ppf(0.975, n - 1)"):
                seeds_for(sd, half, q=0.95),
            ("dof", "the t quantile has n degrees of freedom; it needs n - 1"): seeds_for(sd, half, dof=0)},
            f"(sd = {sd}, half_width = {half}) {hint}")
    passed(key)
