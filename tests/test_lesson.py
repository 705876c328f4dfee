"""The notebooks' set-up: one call, and models found before they are trained."""
import torch
from conftest import REPO  # noqa: F401  (conftest sets one thread)

import clead_edu as ce
from clead_edu.__main__ import main

TINY = dict(epochs=1, train_n=200)


def lesson(tmp_path, **changes):
    return ce.setup("quick", "digits", run_dir=tmp_path / "runs" / "notebooks", data_root=tmp_path / "data",
                    **{**TINY, **changes})


def same(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_setup_gives_settings_data_and_a_cpu_device(tmp_path):
    """setup: the preset's settings with changes, the data, the device, no fast path off CUDA."""
    L = lesson(tmp_path, lam=0.5)
    assert L.cfg.train.epochs == 1 and L.cfg.train.lam == 0.5 and L.cfg.eps == 0.2
    assert L.device.type == "cpu" and not L.cfg.train.fast
    assert L.data.num_classes == 10 and L.ckpt.name == "digits-quick"
    x, y = L.test_images(16)
    assert x.shape == (16, 1, 8, 8) and 0 <= x.min() and x.max() <= 1


def test_full_preset_off_cuda_does_not_use_the_fast_path(tmp_path):
    """The full preset asks for the fast path (bf16, data on the GPU); off CUDA it is switched off."""
    L = ce.setup("full", "digits", run_dir=tmp_path / "nb", data_root=tmp_path / "data", epochs=1)
    assert ce.from_preset("full").train.fast and not L.cfg.train.fast


def test_model_is_trained_once_then_loaded_and_names_its_settings(tmp_path, capsys):
    """The first call trains into <objective>-e<epochs>-seed<seed>; the second loads the same weights;
    other settings train into another folder and leave the first alone."""
    L = lesson(tmp_path)
    first, hist = L.model("standard", progress=False)
    assert (L.ckpt / "standard-e1-seed0" / "model.pt").exists() and len(hist) == 1
    again, hist2 = L.model("standard", progress=False)
    assert "loaded standard model" in capsys.readouterr().out and same(first, again) and hist2 == hist
    L.model("standard", progress=False, lr=0.01)
    assert (L.ckpt / "standard-e1-seed0-lr0.01" / "model.pt").exists()
    assert same(first, L.model("standard", progress=False)[0])


def test_model_finds_the_checkpoint_the_main_job_wrote(tmp_path, capsys):
    """A model trained by `python -m clead_edu run` with the same settings is loaded, not retrained."""
    out = tmp_path / "runs" / "digits-quick-seed0"
    assert main(["run", "--objectives", "standard", "--epochs", "1", "--train-n", "200", "--eval-n", "20",
                 "--aa-n", "0", "--no-figures", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    model, _ = lesson(tmp_path).model("standard", progress=False)
    assert f"loaded standard model from {out / 'standard'}" in capsys.readouterr().out
    assert same(model, ce.checkpoints.load_checkpoint(out / "standard" / "model.pt"))
