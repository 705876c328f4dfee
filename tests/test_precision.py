"""The training precision: chosen from the hardware (device.pick_precision), applied by the
training loop (fast.mixed_precision), printed once and recorded with the model.

The GPU branches run here with the compute capability mocked (this machine has no GPU):
an A100/H100 (8.0/9.0) gets bfloat16, Colab's T4 (7.5) float16 with a gradient scaler.
torch runs float16 autocast on the CPU too, so float16 with the scaler is trained for real.
"""
import json

import pytest
import torch
from conftest import EPS

from clead_edu import data as D
from clead_edu import device as DV
from clead_edu import fast as FP
from clead_edu import train as T
from clead_edu.__main__ import build_parser, to_config
from clead_edu.config import TrainConfig
from clead_edu.device import pick_precision, seed_everything
from clead_edu.evaluate import accuracy
from clead_edu.models import model_for

CUDA = torch.device("cuda")


@pytest.fixture
def capability(monkeypatch):
    """Set the compute capability the mocked GPU reports: capability((7, 5))."""
    def set_to(cc):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cc)
    return set_to


@pytest.mark.parametrize("cc, expected", [((9, 0), "bf16"), ((8, 0), "bf16"), ((8, 6), "bf16"),
                                          ((7, 5), "fp16"), ((7, 0), "fp16"), ((6, 1), "fp16")])
def test_auto_on_the_fast_path_follows_the_compute_capability(capability, cc, expected):
    """auto: bf16 from compute capability 8.0, float16 (with the scaler) below, e.g. a T4 (7.5)."""
    capability(cc)
    assert pick_precision("auto", CUDA, fast=True) == expected


def test_auto_is_float32_on_cpu_mps_and_off_the_fast_path(capability):
    """auto: float32 on the CPU and on Apple's MPS, and on CUDA without the fast path."""
    capability((9, 0))
    assert pick_precision("auto", "cpu", fast=True) == "fp32"
    assert pick_precision("auto", "mps", fast=True) == "fp32"
    assert pick_precision("auto", CUDA, fast=False) == "fp32"


def test_what_the_user_asks_wins(capability):
    """fp32 asked for on a bf16 GPU is fp32; fp16 and bf16 are honoured on the CPU too."""
    capability((9, 0))
    assert pick_precision("fp32", CUDA, fast=True) == "fp32"
    assert pick_precision("fp16", CUDA, fast=False) == "fp16"
    assert pick_precision("fp16", "cpu") == "fp16" and pick_precision("bf16", "cpu") == "bf16"


def test_bf16_is_refused_on_a_gpu_without_it(capability):
    """bf16 asked for on a T4: a clear error that names the capability and the way out."""
    capability((7, 5))
    with pytest.raises(ValueError, match=r"compute capability 7\.5.*fp16"):
        pick_precision("bf16", CUDA)
    assert pick_precision("fp16", CUDA) == "fp16"


def test_config_and_command_line_take_the_precision():
    """TrainConfig validates the name; --precision reaches the training settings."""
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")
    assert TrainConfig().precision == "auto"
    args = build_parser().parse_args(["run", "--device", "cpu", "--precision", "fp16"])
    assert to_config(args).train.precision == "fp16"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--precision", "half"])


@pytest.mark.parametrize("precision, dtype, scaled", [("fp16", torch.float16, True), ("bf16", torch.bfloat16, False),
                                                      ("fp32", None, False)])
def test_mixed_precision_sets_autocast_and_scaler(precision, dtype, scaled, monkeypatch):
    """Training: autocast at the chosen type, the scaler active for float16 only, one scaler per
    optimizer across epochs; evaluating: no autocast."""
    monkeypatch.setattr(DV, "_NOTED", set())
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    cfg = TrainConfig(precision=precision)
    autocast, scaler = FP.mixed_precision(cfg, torch.device("cpu"), opt)
    assert autocast._enabled == (dtype is not None) and scaler.is_enabled() == scaled
    if dtype is not None:
        assert autocast.fast_dtype == dtype
        with autocast:
            assert torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2)).dtype == dtype
    assert FP.mixed_precision(cfg, torch.device("cpu"), opt)[1] is scaler
    off, none = FP.mixed_precision(cfg, torch.device("cpu"), None)
    assert not off._enabled and none is None


def test_the_choice_is_printed_once(monkeypatch, capsys):
    """The note appears once per process however many epochs ask."""
    monkeypatch.setattr(DV, "_NOTED", set())
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    for _ in range(3):
        FP.mixed_precision(TrainConfig(precision="fp16"), torch.device("cpu"), opt)
    out = capsys.readouterr().out
    assert out.count("training precision") == 1 and "fp16 (float16 autocast with a gradient scaler)" in out


def train_digits(digits, precision: str, out_dir=None):
    """A small_cnn trained 4 epochs (standard) at `precision`; its clean test accuracy on 300 images."""
    seed_everything(0)
    model = model_for(digits, "small_cnn")
    cfg = TrainConfig(objective="standard", epochs=4, batch_size=64, lr=0.05, eps=EPS, precision=precision)
    T.train(model, digits.train, cfg, progress=False, out_dir=out_dir)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x, y = D.take(digits.test, 300, seed=1)
    return accuracy(model, x, y)


def test_float16_with_the_scaler_learns_like_float32(digits, tmp_path):
    """float16 autocast + GradScaler on the CPU reaches float32's clean accuracy within 3 points
    (same seed, same batches), and model.json records the precision each model was trained at."""
    acc32 = train_digits(digits, "fp32", tmp_path / "fp32")
    acc16 = train_digits(digits, "fp16", tmp_path / "fp16")
    assert acc32 > 0.9 and abs(acc16 - acc32) < 0.03, (acc16, acc32)
    assert json.loads((tmp_path / "fp16" / "model.json").read_text())["precision"] == "fp16"
    assert json.loads((tmp_path / "fp32" / "model.json").read_text())["precision"] == "fp32"


def test_models_recorded_before_the_precision_setting_are_still_found(digits, tmp_path):
    """A model.json written before `precision` existed (the shipped pretrained models) matches
    the same settings at precision 'auto', its default, and not at another precision."""
    from dataclasses import asdict

    from clead_edu.checkpoints import find_checkpoint, save_checkpoint
    model = model_for(digits, "small_cnn")
    old = {k: v for k, v in asdict(TrainConfig()).items() if k != "precision"}
    save_checkpoint(model, tmp_path / "m" / "model.pt", {"train": old})
    assert find_checkpoint([tmp_path / "m"], asdict(TrainConfig()), model.config) == tmp_path / "m" / "model.pt"
    assert find_checkpoint([tmp_path / "m"], asdict(TrainConfig(precision="fp16")), model.config) is None
