"""Nothing lost, nothing silently wrong: SIGKILL and resume, determinism, NaN loss, runs side by side.

The main job runs here as a real subprocess (`python -m clead_edu run`), as a student
would start it, with one thread so that results repeat bit for bit on the CPU.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clead_edu import data as D
from clead_edu import train as T
from clead_edu.models import model_for

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# long enough epochs (1000 images, batches of 32, PGD-5) that a kill lands inside one
JOB = ["run", "--objectives", "pgd_at", "--epochs", "3", "--train-n", "1000", "--batch-size", "32",
       "--eval-n", "60", "--aa-n", "30", "--no-figures", "--no-progress"]


def cli(args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clead_edu", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def without_timing(metrics_path: Path) -> dict:
    """metrics.json minus wall-clock times (the only fields that may differ between runs)."""
    m = json.loads(metrics_path.read_text())
    m.pop("seconds")
    for r in m["models"].values():
        r.pop("train_seconds")
    return m


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The job run once without interruption: its output folder."""
    out = tmp_path_factory.mktemp("straight") / "run"
    finish(cli([*JOB, "--out", str(out)], REPO))
    return out


def test_sigkill_mid_epoch_then_resume_matches_straight_run(straight, tmp_path):
    """SIGKILL during epoch 2 leaves the epoch-1 state intact; --resume ends with the same
    weights and the same metrics.json (timings aside) as the run that was never interrupted."""
    out = tmp_path / "run"
    state = out / "pgd_at" / "train_state.pt"
    proc = cli([*JOB, "--out", str(out)], REPO)
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)                                  # now inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    saved = torch.load(state, weights_only=True)     # the state file is whole (written atomically)
    assert 1 <= len(json.loads(saved["history"])) < 3, "the kill did not land inside the run"
    assert not (out / "pgd_at" / "model.pt").exists() and not (out / "metrics.json").exists()

    log = finish(cli([*JOB, "--out", str(out), "--resume"], REPO))
    assert "resuming pgd_at after epoch" in log
    a, b = weights(out / "pgd_at" / "model.pt"), weights(straight / "pgd_at" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert without_timing(out / "metrics.json") == without_timing(straight / "metrics.json")


def test_same_seed_same_metrics(straight, tmp_path):
    """The main job's tiny setting run twice with the same seed gives identical metrics.json."""
    out = tmp_path / "again"
    finish(cli([*JOB, "--out", str(out)], REPO))
    assert without_timing(out / "metrics.json") == without_timing(straight / "metrics.json")


def test_two_runs_at_once_never_share_a_folder(straight, tmp_path):
    """Two runs started together with the same default output name: one writes to
    runs/<name>, the other to runs/<name>-2; both finish with the straight run's numbers."""
    procs = [cli(JOB, tmp_path) for _ in range(2)]
    logs = [finish(p) for p in procs]
    first, second = tmp_path / "runs" / "digits-quick-seed0", tmp_path / "runs" / "digits-quick-seed0-2"
    assert sum("writing to" in log and "-2" in log for log in logs) == 1, logs
    for out in (first, second):
        assert without_timing(out / "metrics.json") == without_timing(straight / "metrics.json")
    assert not (tmp_path / "runs" / "digits-quick-seed0-3").exists()


def test_nan_loss_stops_and_keeps_last_good_state(digits, tmp_path, monkeypatch):
    """A loss that turns NaN in epoch 2 stops training with a message naming the learning rate
    and the saved state; the state on disk is epoch 1's, finite, and resuming finishes the run."""
    train_set = D.subset(digits.train, 256)
    cfg = T.TrainConfig(objective="standard", epochs=3, batch_size=64, lr=0.05)
    real, calls = T.objective_step, []

    def nan_in_epoch_2(model, x, y, cfg, head=None):
        loss, logits = real(model, x, y, cfg, head)
        calls.append(1)
        return (loss * float("nan") if 5 <= len(calls) <= 8 else loss), logits

    monkeypatch.setattr(T, "objective_step", nan_in_epoch_2)
    T.seed_everything(0)
    model = model_for(digits, "small_cnn")
    with pytest.raises(FloatingPointError, match=r"epoch 2.*learning rate.*train_state\.pt"):
        T.train(model, train_set, cfg, out_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / "train_state.pt", weights_only=True)
    assert len(json.loads(state["history"])) == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "model.pt").exists()
    monkeypatch.setattr(T, "objective_step", real)
    resumed = model_for(digits, "small_cnn")
    hist = T.train(resumed, train_set, cfg, out_dir=tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3] and all(h["train_loss"] == h["train_loss"] for h in hist)
