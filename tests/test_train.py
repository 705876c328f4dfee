"""train: objectives, accuracy after training, checkpoints, resuming an interrupted run, config checks."""
import functools
import json
import math
from dataclasses import replace

import pytest
import torch
from conftest import EPS

from clead_edu import data as D
from clead_edu import objectives as O
from clead_edu import train as T
from clead_edu.attacks import pgd
from clead_edu.config import TrainConfig
from clead_edu.device import seed_everything
from clead_edu.evaluate import accuracy
from clead_edu.models import model_for

# long enough epochs (1000 images, batches of 32, PGD-5) that a kill lands inside one


def small_cfg(objective="standard", epochs=1, **kw):
    base = dict(batch_size=64, lr=0.05, eps=EPS, alpha=0.05, train_steps=2)
    return TrainConfig(objective=objective, epochs=epochs, **{**base, **kw})


def fresh_model(data):
    seed_everything(0)
    return model_for(data, "small_cnn")


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_standard_training_learns_digits(standard_model, digits):
    """Standard training reaches > 90% clean test accuracy (chance is 10%)."""
    x, y = D.take(digits.test)
    assert accuracy(standard_model, x, y) > 0.9


def test_pgd_at_beats_standard_under_pgd(standard_model, pgd_at_model, digits):
    """The PGD-AT model's PGD-10 accuracy (eps 0.2) is well above the standard model's."""
    x, y = D.take(digits.test)
    torch.manual_seed(0)
    robust = accuracy(pgd_at_model, x, y, pgd, eps=EPS, steps=10)
    plain = accuracy(standard_model, x, y, pgd, eps=EPS, steps=10)
    assert plain < 0.2 and robust > plain + 0.3


@pytest.mark.parametrize("objective,extra", [
    ("standard", {}), ("fgsm_at", {}), ("pgd_at", {}), ("trades", {}), ("clead", {}),
    ("clead", dict(positives="pair", mu=1.0, head_dim=16)), ("clead", dict(joint_bn=True)), ("align", {}),
], ids=["standard", "fgsm_at", "pgd_at", "trades", "clead", "clead-pair-mu1-head16", "clead-joint-bn", "align"])


def test_each_objective_trains(objective, extra, digits):
    """One epoch of every objective on 256 images: finite loss, weights updated, model left in eval mode."""
    model = fresh_model(digits)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    hist = T.train(model, D.subset(digits.train, 256), small_cfg(objective, **extra), progress=False)
    assert len(hist) == 1 and hist[0]["epoch"] == 1
    assert math.isfinite(hist[0]["train_loss"]) and hist[0]["train_loss"] > 0
    assert 0 <= hist[0]["train_acc"] <= 1
    assert any(not torch.equal(init[k], v) for k, v in model.state_dict().items())
    assert not any(m.training for m in model.modules())


def test_training_loss_decreases(digits):
    """Three epochs of C-LEAD on 256 images: the loss goes down from the first to the last epoch."""
    model = fresh_model(digits)
    hist = T.train(model, D.subset(digits.train, 256), small_cfg("clead", epochs=3), progress=False)
    losses = [h["train_loss"] for h in hist]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_after_interruption_matches_straight_run(digits, tmp_path, monkeypatch, precision):
    """A 3-epoch run killed after epoch 2, resumed with resume=True, ends with the same weights as a straight run.

    (Training 2 epochs and then asking for 3 is a different run: the cosine schedule
    depends on the total number of epochs, so that cannot reproduce a 3-epoch run.)
    In float16 the gradient scaler's scale resumes with the rest (here it doubles after every
    step that does not overflow, so that it moves within this short run; restarted at 2**16,
    the gradients would round differently and the weights end elsewhere).
    """
    train_set, cfg = D.subset(digits.train, 256), small_cfg("pgd_at", epochs=3, precision=precision)
    monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, growth_interval=1))
    straight = fresh_model(digits)
    T.train(straight, train_set, cfg, progress=False)

    real_run_epoch, calls = T.run_epoch, []

    def dies_in_epoch_3(loader, model, cfg, opt=None, *args, **kw):
        if opt is not None:
            calls.append(1)
            if len(calls) == 3:
                raise Interrupted
        return real_run_epoch(loader, model, cfg, opt, *args, **kw)

    monkeypatch.setattr(T, "run_epoch", dies_in_epoch_3)
    with pytest.raises(Interrupted):
        T.train(fresh_model(digits), train_set, cfg, out_dir=tmp_path, progress=False)
    monkeypatch.setattr(T, "run_epoch", real_run_epoch)
    assert (tmp_path / "train_state.pt").exists() and not (tmp_path / "model.pt").exists()

    resumed = fresh_model(digits)
    hist = T.train(resumed, train_set, cfg, out_dir=tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert all(h["seconds"] > 0 for h in hist)     # the epochs before the interruption keep their times
    assert same_weights(resumed, straight)
    assert (tmp_path / "model.pt").exists()


def test_resume_ignores_state_from_other_settings(digits, tmp_path):
    """resume=True does not continue from a state written with another config: it trains from scratch."""
    train_set = D.subset(digits.train, 256)
    T.train(fresh_model(digits), train_set, small_cfg(epochs=1, lr=0.2), out_dir=tmp_path, progress=False)
    straight = fresh_model(digits)
    T.train(straight, train_set, small_cfg(epochs=2), progress=False)
    resumed = fresh_model(digits)
    hist = T.train(resumed, train_set, small_cfg(epochs=2), out_dir=tmp_path, resume=True, progress=False)
    assert len(hist) == 2 and same_weights(resumed, straight)


def test_train_config_rejects_bad_values(digits):
    """TrainConfig refuses eps in 0-255 units and an arm where a name belongs; training refuses
    an objective without a record, naming the ones there are, before any epoch runs."""
    with pytest.raises(ValueError, match="/255"):
        TrainConfig(eps=8)
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="clead[lam=0]")
    with pytest.raises(ValueError, match="unknown objective 'adversarial'.*pgd_at"):
        T.train(model_for(digits, "small_cnn"), digits.train, TrainConfig(objective="adversarial"), progress=False)


def test_nan_loss_stops_and_keeps_last_good_state(digits, tmp_path, monkeypatch):
    """A loss that turns NaN in epoch 2 stops training with a message naming the learning rate
    and the saved state; the state on disk is epoch 1's, finite, and resuming finishes the run."""
    train_set = D.subset(digits.train, 256)
    cfg = TrainConfig(objective="standard", epochs=3, batch_size=64, lr=0.05)
    real, calls = O.OBJECTIVES["standard"], []

    def nan_in_epoch_2(model, x, y, cfg, head=None):
        loss, logits = real.step(model, x, y, cfg, head)
        calls.append(1)
        return (loss * float("nan") if 5 <= len(calls) <= 8 else loss), logits

    monkeypatch.setitem(O.OBJECTIVES, "standard", replace(real, step=nan_in_epoch_2))
    seed_everything(0)
    model = model_for(digits, "small_cnn")
    with pytest.raises(FloatingPointError, match=r"epoch 2.*learning rate.*train_state\.pt"):
        T.train(model, train_set, cfg, out_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / "train_state.pt", weights_only=True)
    assert len(json.loads(state["history"])) == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "model.pt").exists()
    monkeypatch.setitem(O.OBJECTIVES, "standard", real)
    resumed = model_for(digits, "small_cnn")
    hist = T.train(resumed, train_set, cfg, out_dir=tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3] and all(h["train_loss"] == h["train_loss"] for h in hist)


def test_lam_ramp_reaches_the_objective(digits, monkeypatch):
    """With lam_ramp=2 the objective sees lam 0, lam/2, lam, lam in epochs 1-4 (constant lam without
    a ramp), and the history records the epoch's lam."""
    from clead_edu.train import lam_at
    seen = []
    real = O.OBJECTIVES["align"]

    def spy(model, x, y, cfg, head=None):
        seen.append(cfg.lam)
        return real.step(model, x, y, cfg, head)
    monkeypatch.setitem(O.OBJECTIVES, "align", replace(real, step=spy))
    small = D.subset(digits.train, 64)
    cfg = TrainConfig(objective="align", epochs=4, batch_size=64, eps=0.2, alpha=0.05, train_steps=1, lam=2.0, lam_ramp=2)
    hist = T.train(model_for(digits, "small_cnn"), small, cfg, progress=False)
    assert seen == [0.0, 1.0, 2.0, 2.0] and [h["lam"] for h in hist] == seen
    assert [lam_at(replace(cfg, lam_ramp=0), e) for e in range(3)] == [2.0, 2.0, 2.0]
    assert [lam_at(replace(cfg, lam_ramp=4), e) for e in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]


@pytest.mark.parametrize("head_dim", [0, 32])
def test_contrastive_term_is_logged_and_falls_well_below_its_uniform_baseline(digits, head_dim):
    """C-LEAD's log keeps the cross-entropy and the SupCon term apart, with the term's yardsticks
    for the batch (uniform similarities: ln(2B - 1); floor: mean ln|positives|); on the digits
    (separable classes) the term ends well below its uniform baseline, most of the way to its floor,
    and the two parts add up to the loss (lam 1). The lam-0 control measures the term untrained."""
    cfg = small_cfg("clead", epochs=4, batch_size=64, head_dim=head_dim, tau=0.1)
    history = T.train(fresh_model(digits), digits.train, cfg, progress=False)
    first, last = history[0], history[-1]
    assert last["train_supcon_uniform"] == pytest.approx(math.log(127), abs=0.02)   # 128 views per batch
    assert 1.5 < last["train_supcon_floor"] < 3.0            # ~13 same-class views out of 127
    assert last["train_loss"] == pytest.approx(last["train_ce"] + last["train_supcon"], rel=1e-4)
    gap = last["train_supcon_uniform"] - last["train_supcon_floor"]
    assert last["train_supcon"] < last["train_supcon_floor"] + 0.5 * gap   # more than half way down
    assert last["train_supcon"] < first["train_supcon"]
    control = T.train(fresh_model(digits), digits.train, replace(cfg, lam=0.0), progress=False)
    assert control[-1]["train_loss"] == pytest.approx(control[-1]["train_ce"], rel=1e-6)
    assert control[-1]["train_supcon"] > last["train_supcon"]   # lam > 0 trains the term further
