"""tools/make_cifar10_mini.py and get_data("cifar10") on a tiny fake CIFAR-10, offline.

The fake is written in torchvision's format (cifar-10-batches-py/data_batch_1..5, test_batch,
batches.meta: pickled dicts with a uint8 `data` array of rows R..G..B.. and a `labels` list) and
read by torchvision's own CIFAR10 class. Only its MD5 check is replaced, by a check that the file
exists, as torchvision's own dataset tests do: the fake's bytes cannot have the real sums.
"""
import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from clead_edu import data as D

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH, TAKE, TEST, TAKE_TEST = 4, 2, 12, 10     # batch sizes of the fake, and how many to take


def load_tool():
    spec = importlib.util.spec_from_file_location("make_cifar10_mini", REPO / "tools" / "make_cifar10_mini.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_batch(path, x, labels):
    """x (N, 32, 32, 3) uint8 -> torchvision's pickle: data (N, 3072) channel by channel."""
    with open(path, "wb") as f:
        pickle.dump({"batch_label": path.name, "labels": list(labels), "filenames": [f"{i}.png" for i in range(len(x))],
                     "data": x.transpose(0, 3, 1, 2).reshape(len(x), -1)}, f)


@pytest.fixture
def fake_cifar(tmp_path):
    """Root with a fake cifar-10-batches-py; returns (root, {batch name: (x, labels)}). Every
    class appears among the images the tool takes from the training batches and from the test batch."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for k in range(1, 6):
        labels = [(TAKE * (k - 1) + i) % 10 for i in range(PER_BATCH)]
        batches[f"data_batch_{k}"] = (rng.integers(0, 256, (PER_BATCH, 32, 32, 3), dtype=np.uint8), labels)
    batches["test_batch"] = (rng.integers(0, 256, (TEST, 32, 32, 3), dtype=np.uint8), [i % 10 for i in range(TEST)])
    for name, (x, labels) in batches.items():
        write_batch(folder / name, x, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CLASSES, "num_cases_per_batch": PER_BATCH, "num_vis": 3072}, f)
    with mock.patch("torchvision.datasets.cifar.check_integrity", lambda path, md5=None: os.path.isfile(path)):
        yield tmp_path / "cifar", batches


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_tool_writes_each_batch_start_under_its_class_and_name(fake_cifar, tmp_path):
    root, batches = fake_cifar
    out = tmp_path / "mini"
    n = load_tool().build(out, root, download=False, per_batch=TAKE, n_test=TAKE_TEST, progress=False)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert n == len(files) == 5 * TAKE + TAKE_TEST
    for k in range(1, 6):
        x, labels = batches[f"data_batch_{k}"]
        for i in range(TAKE):
            path = out / "train" / CLASSES[labels[i]] / f"b{k}_{i:04d}.png"
            assert np.array_equal(pixels(path), x[i]), path          # lossless, the right image
    x, labels = batches["test_batch"]
    for i in range(TAKE_TEST):
        assert np.array_equal(pixels(out / "test" / CLASSES[labels[i]] / f"t_{i:04d}.png"), x[i])
    assert not list(out.rglob("b1_0002.png")) and not list(out.rglob("t_0010.png"))   # only the first ones


def test_tool_output_is_what_get_data_and_the_sample_tool_read(fake_cifar, tmp_path):
    """The tree is a folder: dataset, and tools/make_cifar10_sample.py takes it."""
    root, batches = fake_cifar
    out = tmp_path / "mini"
    load_tool().build(out, root, download=False, per_batch=TAKE, n_test=TAKE_TEST, progress=False)
    data = D.get_data(f"folder:{out}", augment=False)
    assert data.classes == CLASSES and len(data.train) == 5 * TAKE and len(data.test) == TAKE_TEST
    x, y = D.take(data.test)
    assert x.shape == (TAKE_TEST, 3, 32, 32) and sorted(y.tolist()) == list(range(10))
    npz = tmp_path / "sample.npz"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "make_cifar10_sample.py"), str(out),
                           "--per-class", "1", "--out", str(npz)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    sample = np.load(npz)
    assert sample["x_train"].shape == (10, 32, 32, 3) and sample["x_test"].shape == (TAKE_TEST, 32, 32, 3)
    first = sample["src_train"][0]                       # airplane/b1_0000.png: batch 1, index 0
    assert first == "airplane/b1_0000.png" and np.array_equal(sample["x_train"][0], batches["data_batch_1"][0][0])


def test_tool_runs_again_on_its_own_tree_but_not_over_other_files(fake_cifar, tmp_path):
    root, _ = fake_cifar
    tool, out = load_tool(), tmp_path / "mini"
    tool.build(out, root, download=False, per_batch=TAKE, n_test=TAKE_TEST, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    tool.build(out, root, download=False, per_batch=TAKE, n_test=TAKE_TEST, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == before       # same bytes again
    (out / "train" / "cat" / "mine.png").write_bytes(b"x")
    with pytest.raises(SystemExit, match="mine.png"):
        tool.build(out, root, download=False, per_batch=TAKE, n_test=TAKE_TEST, progress=False)


def test_tool_says_what_is_missing(tmp_path):
    with pytest.raises(SystemExit, match="cifar-10-python.tar.gz"):
        load_tool().build(tmp_path / "mini", tmp_path / "empty", download=False, progress=False)


def test_tool_rejects_more_images_than_a_batch_has(fake_cifar, tmp_path):
    root, _ = fake_cifar
    with pytest.raises(SystemExit, match="batches of at least"):
        load_tool().build(tmp_path / "mini", root, download=False, per_batch=PER_BATCH + 1, n_test=TAKE_TEST,
                              progress=False)


def test_get_data_cifar10_reads_torchvision_files_offline(fake_cifar):
    """get_data("cifar10") through torchvision's loader, no download: the batches in order,
    (3, 32, 32) float images in [0, 1] equal to the stored bytes / 255, the labels, the classes."""
    root, batches = fake_cifar
    data = D.get_data("cifar10", root=root, download=False, augment=False)
    assert data.classes == CLASSES and data.shape == (3, 32, 32) and data.num_classes == 10
    x, y = D.take(data.train)
    want = np.concatenate([batches[f"data_batch_{k}"][0] for k in range(1, 6)])
    assert x.shape == (5 * PER_BATCH, 3, 32, 32) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(want).permute(0, 3, 1, 2))
    assert y.tolist() == sum((batches[f"data_batch_{k}"][1] for k in range(1, 6)), [])
    xt, yt = D.take(data.test)
    assert xt.shape == (TEST, 3, 32, 32) and yt.tolist() == batches["test_batch"][1]
    augmented = D.get_data("cifar10", root=root, download=False)      # crop + flip: same shape and range
    xa, _ = augmented.train[0]
    assert xa.shape == (3, 32, 32) and 0 <= xa.min() and xa.max() <= 1
