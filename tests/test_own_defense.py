"""A defense and a dataset of one's own, each one record registered from outside the package
(here, in this file only): the main job, a two-seed study and its report take them as they
take the package's own, and no file of the package changes (docs/your_own_defense.md)."""
import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from torch.utils.data import TensorDataset

import clead_edu as ce
from clead_edu.__main__ import main

TINY = ["--epochs", "1", "--train-n", "150", "--eval-n", "40", "--autoattack", "none", "--umap-n", "20",
        "--no-figures", "--no-progress", "--threads", "1"]


def noise_step(model, x, y, cfg, head=None):
    """Cross-entropy on x plus uniform noise of size cfg.eps (a toy defense). Returns (loss, logits)."""
    x_noisy = (x + torch.empty_like(x).uniform_(-cfg.eps, cfg.eps)).clamp(0, 1)
    logits = model(x_noisy)
    return F.cross_entropy(logits, y), logits


def stripes(root=None, *, seed=0, **_):
    """Two classes of 8x8 grey images, horizontal or vertical stripes with noise: 300 train, 100 test."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(400) % 2
    base = (torch.arange(8) % 2).float().expand(8, 8)
    x = torch.stack([base if c == 0 else base.T for c in y]).unsqueeze(1)
    x = (0.8 * x + 0.2 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    return ce.data.Data("stripes", TensorDataset(x[:300], y[:300]), TensorDataset(x[300:], y[300:]),
                        ["horizontal", "vertical"], (1, 8, 8), (0.5,), (0.3,))


def package_files() -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((REPO / "clead_edu").rglob("*.py"))}


@pytest.fixture
def own(monkeypatch):
    """The toy objective and the toy dataset registered (one record each), removed afterwards."""
    before = package_files()
    monkeypatch.setitem(ce.objectives.OBJECTIVES, "toy_noise", None)
    ce.objectives.objective("toy_noise", "Toy noise", paired=("pgd_at",), cost=1)(noise_step)
    monkeypatch.setitem(ce.data.DATASETS, "toy-stripes", ce.data.DatasetRecord(stripes, eps=0.1, alpha=0.025))
    yield
    assert package_files() == before          # nothing of the package was edited


def test_own_objective_in_the_main_job_and_a_two_seed_study(own, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--objectives", "pgd_at,toy_noise", "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["models"]) == ["pgd_at", "toy_noise"] and (out / "toy_noise" / "model.pt").exists()
    assert "| Toy noise | " in (out / "report.md").read_text()
    study = tmp_path / "study"
    assert main(["study", "--seeds", "0,1", "--objectives", "pgd_at,toy_noise,toy_noise[eps=0.05]",
                 "--out", str(study), *TINY]) == 0
    summary = json.loads((study / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["accuracy"]["toy_noise[eps=0.05]"]["pgd20"]) == 2
    diff = summary["paired"]["pgd_at"]["toy_noise"]["clean"]
    assert diff == pytest.approx([a - b for a, b in zip(summary["accuracy"]["toy_noise"]["clean"],
                                                        summary["accuracy"]["pgd_at"]["clean"])])
    text = (study / "summary.md").read_text()
    assert "| **Toy noise − PGD-AT** (paired) | " in text and "| **Toy noise [eps=0.05] − PGD-AT** (paired) | " in text


def test_own_objective_is_refused_a_setting_it_does_not_read(own):
    with pytest.raises(ValueError, match="toy_noise does not read lam"):
        ce.objectives.arm("toy_noise[lam=2]")


def test_own_dataset_in_the_main_job(own, tmp_path):
    cfg = ce.from_preset("quick", "toy-stripes")
    assert (cfg.eps, cfg.train.alpha) == (0.1, 0.025)
    out = tmp_path / "run"
    assert main(["run", "--dataset", "toy-stripes", "--objectives", "standard", "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["dataset"] == "toy-stripes" and {k: metrics["images"][k] for k in ("train", "eval")} == {"train": 150, "eval": 40}
    assert metrics["models"]["standard"]["accuracy"]["clean"] > 0.5       # stripes are easy
