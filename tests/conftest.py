"""Shared fixtures: the digits data, two small CNNs trained once per session, a test batch.

Everything runs offline on the CPU. The two models follow the main job's quick
setting (small_cnn, eps 0.2 on 8x8 digits) with fewer epochs and PGD steps.
"""
import copy
import os
from pathlib import Path

import pytest
import torch

from clead_edu import data as D
from clead_edu import models as M
from clead_edu import train as T
from clead_edu.config import TrainConfig
from clead_edu.device import seed_everything

# One intra-op thread: the tensors here are tiny (8x8 images), and on a shared 2-core
# machine two OpenMP threads competing with another busy process made each PGD step
# ~100x slower (0.56 s vs 0.006 s for 40 images, measured).
torch.set_num_threads(1)
# The same for the processes tests start (notebook kernels, the main job): one thread each, so
# that test workers running side by side (pytest -n) never ask for more threads than cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

EPS = 0.2  # L-inf radius used on digits (17 grey levels, so 8/255 would be too small)
REPO = Path(__file__).resolve().parents[1]
# A subprocess of the package from this checkout, with one thread (results repeat bit for bit).
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def train_small_cnn(data, objective: str, **overrides):
    """A small_cnn trained on the digits training split with `objective`, returned in eval mode."""
    seed_everything(0)
    model = M.model_for(data, "small_cnn")
    cfg = dict(objective=objective, epochs=6, batch_size=64, lr=0.05, eps=EPS, alpha=0.05, train_steps=3)
    T.train(model, data.train, TrainConfig(**{**cfg, **overrides}), progress=False)
    return model.eval()


def pytest_runtest_setup(item):
    """Before each test and its fixtures: one thread again (umap-learn's fit resets torch to 2)."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same RNG state (PGD random starts, random tensors)."""
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits():
    return D.get_data("digits")


@pytest.fixture(scope="session")
def standard_model(digits):
    return train_small_cnn(digits, "standard")


@pytest.fixture(scope="session")
def pgd_at_model(digits):
    return train_small_cnn(digits, "pgd_at")


@pytest.fixture(scope="session")
def batch(digits):
    """128 test images (N, 1, 8, 8) in [0, 1] and their labels."""
    return D.take(digits.test, 128, seed=1)


@pytest.fixture
def standard_copy(standard_model):
    """A private copy of the standard model that a test may switch between train/eval."""
    return copy.deepcopy(standard_model)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where tests leave files worth a look (screenshots, timings): $CLEAD_EDU_ARTIFACTS if set,
    else a folder under pytest's temporary directory (printed at the end of the run)."""
    out = Path(os.environ.get("CLEAD_EDU_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


# ----------------------------------------------------------------------------- parallel runs
# `pytest -n auto` (pytest-xdist, --dist loadgroup from pyproject) runs test files side by side.
# A file whose tests share a module fixture (a trained model, a built site, the notebook
# sequence's checkpoint folder) stays on one worker; the longest files start first, so that
# the short tests fill the gaps instead of leaving one worker alone at the end.
LONGEST_FIRST = ("test_notebooks.py", "test_colab.py", "test_gpu_suite.py", "test_browser.py",
                 "test_site.py", "test_fast.py", "test_pipeline.py", "test_editions.py")
ONE_WORKER = LONGEST_FIRST + ("test_cli.py", "test_launch.py", "test_widgets.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Keep each ONE_WORKER file on one worker (an xdist_group named after it) and put the
    LONGEST_FIRST files first, in that order; the rest keep pytest's order."""
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    for item in items:
        if item.path.name in ONE_WORKER:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    items.sort(key=rank)        # stable: each file keeps its own order
