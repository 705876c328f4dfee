"""Property-based tests (hypothesis) of the attack contract.

Well-formed arguments always give a valid result; each ill-formed one gives a ValueError
that names one of the mistakes actually present (`problems` predicts them from the inputs).

For attacks: eps, step size, steps, restarts, norm, shapes (batch of one, empty batch,
wrong rank), dtypes, devices (the `meta` device stands in for a second device on a CPU-only
machine), NaN/inf and out-of-range pixels, labels of the wrong dtype or range. A valid result
has x's shape, dtype and device, is detached, finite, inside [0, 1] and inside the eps-ball,
and leaves the model's mode and parameter gradients as they were. For training: every
TrainConfig field, and tiny training sets including an empty one and a batch of one.
"""
import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clead_edu import train as T
from clead_edu.attacks import fgsm, pgd
from clead_edu.config import TrainConfig
from clead_edu.models import build_model
from clead_edu.objectives import OBJECTIVES

torch.set_num_threads(1)
MODEL = build_model("small_cnn", 10, 1, (0.5,), (0.25,)).eval()   # untrained is enough here
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-300, 300),
                    st.sampled_from([0, 1e-3, 0.1, 0.2, 8 / 255, 0.5, 0.75, 1.0, 8.0, 255.0]))
odd = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.just([0.1]))


@st.composite
def batches(draw):
    """(x, y): mostly well-formed batches of 8x8 digits-shaped images, sometimes broken."""
    n = draw(st.sampled_from([0, 1, 2, 5]))
    shape = draw(st.sampled_from([(n, 1, 8, 8)] * 6 + [(1, 8, 8), (n, 3, 8, 8), (n, 1, 5, 5)]))
    dtype = draw(st.sampled_from([torch.float32] * 8 + [torch.float64, torch.float16, torch.int64, torch.uint8]))
    x = torch.rand(shape) if dtype.is_floating_point else torch.randint(0, 255, shape)
    x = x.to(dtype)
    fault = draw(st.sampled_from(["none"] * 8 + ["nan", "inf", "above1", "negative", "meta"]))
    if fault in ("nan", "inf", "above1", "negative") and x.numel() and x.is_floating_point():
        x.view(-1)[0] = {"nan": math.nan, "inf": math.inf, "above1": 1.5, "negative": -0.1}[fault]
    y = torch.randint(0, 10, (shape[0],))
    ylab = draw(st.sampled_from(["ok"] * 8 + ["int32", "out_of_range", "wrong_len"]))
    if ylab == "int32":
        y = y.int()
    elif ylab == "out_of_range" and len(y):
        y[0] = 10
    elif ylab == "wrong_len":
        y = torch.zeros(shape[0] + 1, dtype=torch.long)
    if fault == "meta":
        x, y = x.to("meta"), y.to("meta")
    return x, y


def assert_valid(x_adv, x, eps, norm):
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert not x_adv.requires_grad
    if x.numel():
        assert torch.isfinite(x_adv).all() and x_adv.min() >= 0 and x_adv.max() <= 1
        d = (x_adv - x).flatten(1)
        size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
        assert (size <= eps * (1 + 1e-5) + 1e-6).all(), (size.max().item(), eps)


def call(attack, model, x, y, **kw):
    """(x_adv, None), or (None, the ValueError); the model's mode and gradients are checked either way."""
    before = [m.training for m in model.modules()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return attack(model, x, y, **kw), None
    except ValueError as err:
        return None, err
    finally:
        assert [m.training for m in model.modules()] == before, "model mode not restored"
        assert all(p.grad is None for p in model.parameters()), "gradients left on parameters"


def _bad_number(v, low=0.0) -> bool:
    return isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low


def problems(x, y, kw) -> set[str]:
    """The mistakes in an attack call, each as a phrase its error message must contain."""
    found, eps, norm = set(), kw.get("eps"), kw.get("norm", "linf")
    if norm not in ("linf", "l2"):
        found.add("norm")
    if _bad_number(eps) or (norm == "linf" and eps > 1):
        found.add("eps")
    for name in ("steps", "restarts"):
        v = kw.get(name, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v < (name == "restarts"):
            found.add(name)
    if kw.get("alpha") is not None and _bad_number(kw["alpha"]):
        found.add("alpha")
    if y.dtype != torch.long:
        found.add("y must hold class indices")
    if not x.is_floating_point():
        found.add("float tensor")
    elif x.dtype != torch.float32:
        found.add(str(x.dtype).split(".")[1])
    if x.dim() != 4:
        found.add("shape")
    if y.shape != x.shape[:1]:
        found.add("y must have shape")
    if x.device.type == "meta":
        found.add("meta")
    elif x.numel() and x.is_floating_point() and not torch.isfinite(x).all():
        found.add("nan")
    elif x.numel() and (x.min() < 0 or x.max() > 1):
        found.add("[0, 1]")
    if y.device.type != "meta" and len(y) and y.max() >= 10:
        found.add("labels must be in")
    return found


def check_call(attack, x, y, **kw):
    """The call keeps the contract: a valid x_adv when well-formed, else a ValueError naming a
    mistake that is really there. (A shape the model cannot take is checked by probing it.)"""
    out, err = call(attack, MODEL, x, y, **kw)
    expected = problems(x, y, kw)
    if err is None:
        assert not expected, f"accepted a call with {expected}"
        assert_valid(out, x, kw["eps"], kw.get("norm", "linf"))
    else:
        msg = str(err).lower()
        assert any(p.lower() in msg for p in expected | {"cannot take inputs"}), (expected, msg)


@st.composite
def pgd_args(draw):
    """PGD keyword arguments: all valid, or one of them drawn from odd and out-of-range values."""
    bad = draw(st.sampled_from(["none"] * 4 + ["eps", "alpha", "steps", "restarts", "norm"]))
    valid = dict(eps=st.floats(0, 1), alpha=st.one_of(st.none(), st.floats(0, 1)), steps=st.integers(0, 4),
                 restarts=st.integers(1, 3), norm=st.sampled_from(["linf", "l2"]))
    invalid = dict(eps=st.one_of(numbers, odd), alpha=st.one_of(numbers, odd),
                   steps=st.one_of(st.integers(-2, -1), st.floats(0, 3), odd),
                   restarts=st.one_of(st.integers(-1, 0), odd),
                   norm=st.sampled_from(["Linf", "inf", "L2", "", None, 2]))
    return {k: draw(invalid[k] if k == bad else v) for k, v in valid.items()}


@SETTINGS
@given(xy=batches(), kw=pgd_args(), random_start=st.booleans())
def test_pgd_keeps_the_contract(xy, kw, random_start):
    x, y = xy
    check_call(pgd, x, y, random_start=random_start, **kw)


@SETTINGS
@given(xy=batches(), eps=st.one_of(st.floats(0, 1), numbers, odd))
def test_fgsm_keeps_the_contract(xy, eps):
    x, y = xy
    check_call(fgsm, x, y, eps=eps)


@SETTINGS
@given(eps=st.floats(1e-4, 0.5), steps=st.integers(1, 3), n=st.sampled_from([1, 2, 4]))
def test_well_formed_calls_always_succeed(eps, steps, n):
    """Valid arguments never raise (including a batch of one)."""
    x, y = torch.rand(n, 1, 8, 8), torch.randint(0, 10, (n,))
    for norm in ("linf", "l2"):
        assert_valid(pgd(MODEL, x, y, eps=eps, steps=steps, norm=norm), x, eps, norm)
    assert_valid(fgsm(MODEL, x, y, eps=eps), x, eps, "linf")


config_values = st.one_of(numbers, odd, st.sampled_from(["standard", "pgd_at", "trades", "clead", "class",
                                                          "pair", "nonsense"]))
FIELDS = ["objective", "epochs", "batch_size", "lr", "eps", "alpha", "train_steps", "beta", "lam", "tau", "mu",
          "positives", "head_dim", "warmup_epochs", "weight_decay"]


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(FIELDS), config_values, max_size=3))
def test_train_config_valid_or_value_error(changes):
    """Any field values: TrainConfig either accepts them (and they are sane) or raises ValueError."""
    try:
        cfg = TrainConfig(**changes)
    except ValueError as err:
        assert len(str(err)) > 15
        return
    assert isinstance(cfg.objective, str) and cfg.objective and cfg.epochs >= 1 and cfg.batch_size >= 1
    assert 0 <= cfg.eps <= 1 and cfg.lr > 0 and cfg.tau > 0 and cfg.positives in ("class", "pair")
    for name in ("lr", "eps", "alpha", "beta", "lam", "mu", "weight_decay", "warmup_epochs"):
        assert math.isfinite(getattr(cfg, name)) and getattr(cfg, name) >= 0


@settings(max_examples=20, deadline=None)
@given(n=st.sampled_from([0, 1, 2, 3]), batch_size=st.integers(1, 4),
       objective=st.sampled_from(tuple(OBJECTIVES)), head_dim=st.sampled_from([0, 4]))
@example(n=1, batch_size=1, objective="clead_released", head_dim=0)
def test_training_on_tiny_sets(n, batch_size, objective, head_dim):
    """One epoch on 0-3 images (batches of one included): finite loss, or ValueError for an empty set."""
    from torch.utils.data import TensorDataset
    data = TensorDataset(torch.rand(n, 1, 8, 8), torch.randint(0, 10, (n,)))
    model = build_model("small_cnn", 10, 1, (0.5,), (0.25,))
    cfg = TrainConfig(objective=objective, epochs=1, batch_size=batch_size, lr=0.01, eps=0.1,
                        alpha=0.05, train_steps=1, head_dim=head_dim if objective == "clead" else 0)
    if n == 0:
        with pytest.raises(ValueError, match="empty"):
            T.train(model, data, cfg, progress=False)
        return
    hist = T.train(model, data, cfg, progress=False)
    stages = 1 + (OBJECTIVES[objective].finish is not None)     # the released arms add a classifier stage
    assert len(hist) == stages and all(math.isfinite(h["train_loss"]) for h in hist)
