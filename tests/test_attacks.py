"""attacks.fgsm / attacks.pgd: the attack contract (design.md section 4) and reference checks."""
import copy

import pytest
import torch
import torch.nn.functional as F

from clead_edu.attacks import fgsm, pgd

EPS = 0.2      # L-inf radius on digits
EPS_L2 = 1.0   # L2 radius on 8x8 images


def target_of(y):
    return (y + 1) % 10


# name -> (norm, eps, attack(model, x, y, eps) -> x_adv)
CASES = {
    "fgsm": ("linf", EPS, lambda m, x, y, e: fgsm(m, x, y, eps=e)),
    "pgd_linf": ("linf", EPS, lambda m, x, y, e: pgd(m, x, y, eps=e, steps=10)),
    "pgd_l2": ("l2", EPS_L2, lambda m, x, y, e: pgd(m, x, y, eps=e, steps=10, norm="l2")),
    "pgd_targeted": ("linf", EPS, lambda m, x, y, e: pgd(m, x, target_of(y), eps=e, steps=10, targeted=True)),
    "pgd_restarts": ("linf", EPS, lambda m, x, y, e: pgd(m, x, y, eps=e, steps=10, restarts=3)),
}
UNTARGETED = [k for k in CASES if k != "pgd_targeted"]
case = pytest.mark.parametrize("name", list(CASES))


def run(name, model, x, y, eps=None):
    norm, default_eps, attack = CASES[name]
    return attack(model, x, y, default_eps if eps is None else eps)


def acc(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def modes(model):
    return [m.training for m in model.modules()]


# ----------------------------------------------------------------------------- output contract

@case
def test_output_in_box_and_ball(name, standard_model, batch):
    """x_adv stays in [0, 1] and within eps of x in the attack's norm."""
    x, y = batch
    norm, eps, _ = CASES[name]
    x_adv = run(name, standard_model, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    if norm == "linf":
        assert delta.abs().max() <= eps + 1e-6
    else:
        assert (delta.norm(dim=1) <= eps + 1e-5).all()
    assert delta.abs().max() > 0.05 * eps  # the attack did move the images


@case
def test_output_detached(name, standard_model, batch):
    """x_adv carries no autograd graph."""
    x, y = batch
    x_adv = run(name, standard_model, x[:16], y[:16])
    assert not x_adv.requires_grad and x_adv.grad_fn is None


@case
@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_module_modes_restored(name, mode, standard_copy, batch):
    """Each module's own train/eval flag is the same after the attack as before."""
    x, y = batch
    model = standard_copy.train(mode != "eval")
    if mode == "mixed":
        model.body[1].eval()   # one BatchNorm block in eval mode, the rest training
        model.fc.eval()
    before = modes(model)
    assert mode != "mixed" or len(set(before)) == 2
    run(name, model, x[:16], y[:16])
    assert modes(model) == before


@case
def test_no_gradients_left_on_parameters(name, standard_copy, batch):
    """The attack leaves .grad of every parameter as None."""
    x, y = batch
    model = standard_copy.train()
    model.zero_grad(set_to_none=True)
    run(name, model, x[:16], y[:16])
    assert all(p.grad is None for p in model.parameters())


@case
def test_batchnorm_statistics_unchanged(name, standard_copy, batch):
    """The attack runs in eval mode, so BatchNorm running statistics do not move."""
    x, y = batch
    model = standard_copy.train()
    before = {k: v.clone() for k, v in model.named_buffers()}
    run(name, model, x[:32], y[:32])
    after = dict(model.named_buffers())
    assert all(torch.equal(before[k], after[k]) for k in before)


@case
def test_eps_zero_is_identity(name, standard_model, batch):
    """eps=0 returns x itself, so accuracy equals clean accuracy."""
    x, y = batch
    x_adv = run(name, standard_model, x, y, eps=0.0)
    assert torch.equal(x_adv, x)
    assert acc(standard_model, x_adv, y) == acc(standard_model, x, y)


# ----------------------------------------------------------------------------- strength

@pytest.mark.parametrize("name", UNTARGETED)
def test_attack_lowers_accuracy(name, standard_model, pgd_at_model, batch):
    """Untargeted attacks never raise accuracy, and strictly lower it on the standard model."""
    x, y = batch
    for model in (standard_model, pgd_at_model):
        assert acc(model, run(name, model, x, y), y) <= acc(model, x, y)
    assert acc(standard_model, run(name, standard_model, x, y), y) < acc(standard_model, x, y) - 0.3


def test_targeted_pgd_reaches_target(standard_model, batch):
    """Targeted PGD at eps 0.2 makes most predictions equal the target class."""
    x, y = batch
    t = target_of(y)
    clean_hits = acc(standard_model, x, t)
    x_adv = pgd(standard_model, x, t, eps=EPS, steps=10, targeted=True)
    assert clean_hits < 0.05 and acc(standard_model, x_adv, t) > 0.5


def test_restarts_keep_what_the_first_run_found(pgd_at_model, batch):
    """With the same seed, restarts=3 fools every example the single run fools, and overall is not weaker."""
    x, y = batch
    torch.manual_seed(1)
    one = pgd(pgd_at_model, x, y, eps=EPS, steps=5)
    torch.manual_seed(1)
    three = pgd(pgd_at_model, x, y, eps=EPS, steps=5, restarts=3)
    with torch.no_grad():
        fooled_one = pgd_at_model(one).argmax(1) != y
        fooled_three = pgd_at_model(three).argmax(1) != y
        loss_one = F.cross_entropy(pgd_at_model(one), y, reduction="none")
        loss_three = F.cross_entropy(pgd_at_model(three), y, reduction="none")
    assert not (fooled_one & ~fooled_three).any()
    same = fooled_one == fooled_three
    assert (loss_three[same] >= loss_one[same] - 1e-6).all()
    torch.manual_seed(2)
    fresh_one = acc(pgd_at_model, pgd(pgd_at_model, x, y, eps=EPS, steps=5), y)
    assert acc(pgd_at_model, three, y) <= fresh_one + 0.02


def test_pgd_at_model_is_more_robust(standard_model, pgd_at_model, batch):
    """Under PGD-10 at eps 0.2 the PGD-AT model keeps far more accuracy than the standard one."""
    x, y = batch
    robust = acc(pgd_at_model, pgd(pgd_at_model, x, y, eps=EPS, steps=10), y)
    plain = acc(standard_model, pgd(standard_model, x, y, eps=EPS, steps=10), y)
    assert robust > plain + 0.3


# ----------------------------------------------------------------------------- reference: torchattacks

@pytest.fixture
def ref_batch(batch):
    """64 images (a power of two: torchattacks averages the loss, we sum it; 1/64 scales exactly)."""
    x, y = batch
    return x[:64], y[:64]


def test_fgsm_matches_torchattacks(standard_model, ref_batch):
    """fgsm equals torchattacks.FGSM exactly."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = ref_batch
    ours = fgsm(standard_model, x, y, eps=EPS)
    theirs = torchattacks.FGSM(standard_model, eps=EPS)(x, y)
    assert torch.equal(ours, theirs) and not torch.equal(ours, x)


def test_pgd_linf_matches_torchattacks(standard_model, ref_batch):
    """pgd (L-inf, no random start) equals torchattacks.PGD (float64, so no sign flips from rounding)."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = ref_batch
    model, x = copy.deepcopy(standard_model).double(), x.double()
    ours = pgd(model, x, y, eps=EPS, alpha=0.05, steps=10, random_start=False)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=0.05, steps=10, random_start=False)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-10, rtol=0)
    assert (ours - x).abs().max() > EPS / 2


def test_targeted_pgd_matches_torchattacks(standard_model, ref_batch):
    """Targeted pgd equals torchattacks.PGD in targeted mode (descending CE towards the target), float64."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = ref_batch
    model, x = copy.deepcopy(standard_model).double(), x.double()
    ours = pgd(model, x, target_of(y), eps=EPS, alpha=0.05, steps=10, random_start=False, targeted=True)
    atk = torchattacks.PGD(model, eps=EPS, alpha=0.05, steps=10, random_start=False)
    atk.set_mode_targeted_by_function(lambda images, labels: target_of(labels), quiet=True)
    theirs = atk(x, y)
    assert torch.allclose(ours, theirs, atol=1e-10, rtol=0) and not torch.equal(ours, x)


def test_pgd_l2_matches_torchattacks(standard_model, ref_batch):
    """pgd (L2, no random start) is the same algorithm as torchattacks.PGDL2 (float64, to 1e-10).

    Both step by alpha * g / ||g||, project delta onto the L2 ball, then clip to [0, 1].
    The one difference: torchattacks adds 1e-10 to ||g|| (we clamp it at 1e-12). On very
    confident examples ||g|| is ~1e-5, so that alone moves pixels by ~1e-6, and float32
    turns it into ~1e-4 (the softmax is saturated). So compare in float64 with
    torchattacks' epsilon set to 0.
    """
    torchattacks = pytest.importorskip("torchattacks")
    x, y = ref_batch
    model, x = copy.deepcopy(standard_model).double(), x.double()
    ours = pgd(model, x, y, eps=EPS_L2, alpha=0.25, steps=10, norm="l2", random_start=False)
    atk = torchattacks.PGDL2(model, eps=EPS_L2, alpha=0.25, steps=10, random_start=False)
    atk.eps_for_division = 0.0
    assert torch.allclose(ours, atk(x, y), atol=1e-10, rtol=0)
    assert (ours - x).flatten(1).norm(dim=1).max() > EPS_L2 / 2
