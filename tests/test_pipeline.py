"""Nothing lost, nothing silently wrong: SIGKILL and resume, determinism, NaN loss, runs side by side.

The main job runs here as a real subprocess (`python -m clead_edu run`), as a student
would start it, with one thread so that results repeat bit for bit on the CPU.
"""
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ENV, REPO

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
        for row in r["history"]:
            row.pop("seconds")
    return m


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The job run once without interruption: its output folder."""
    out = tmp_path_factory.mktemp("straight") / "run"
    finish(cli([*JOB, "--out", str(out)], REPO))
    return out


# The job, stopped by SIGKILL from inside after `n` training batches: no sleeping, no race.
KILL_AFTER = """
import os, signal, sys
from dataclasses import replace
from clead_edu import objectives
from clead_edu.__main__ import main
n, real, seen = int(sys.argv[1]), objectives.OBJECTIVES["pgd_at"], []
def step(*args, **kw):
    seen.append(1)
    if len(seen) > n:
        os.kill(os.getpid(), signal.SIGKILL)
    return real.step(*args, **kw)
objectives.OBJECTIVES["pgd_at"] = replace(real, step=step)
sys.exit(main(sys.argv[2:]))
"""


def test_sigkill_mid_epoch_then_resume_matches_straight_run(straight, tmp_path):
    """SIGKILL in the middle of epoch 2 leaves the epoch-1 state intact; --resume ends with the same
    weights and the same metrics.json (timings aside) as the run that was never interrupted."""
    out = tmp_path / "run"
    state = out / "pgd_at" / "train_state.pt"
    per_epoch = 1000 // 32 + 1                      # batches of 32 from 1,000 images
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER, str(per_epoch + per_epoch // 2), *JOB,
                           "--out", str(out)], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    saved = torch.load(state, weights_only=True)     # the state file is whole (written atomically)
    assert len(json.loads(saved["history"])) == 1, "the kill did not land inside epoch 2"
    assert not (out / "pgd_at" / "model.pt").exists() and not (out / "metrics.json").exists()

    log = finish(cli([*JOB, "--out", str(out), "--resume"], REPO))
    assert "resuming pgd_at after epoch 1" in log
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


def test_no_figures_still_measures_the_feature_space(straight):
    """--no-figures draws nothing but still records and reports the pair metrics."""
    feats = json.loads((straight / "metrics.json").read_text())["feature_space"]
    assert set(feats) == {"pgd_at"} and 0 <= feats["pgd_at"]["pair_distance"] <= 2
    assert 0 <= feats["pgd_at"]["adv_nn_accuracy"] <= 1
    report = (straight / "report.md").read_text()
    assert "| PGD-AT | " + f"{feats['pgd_at']['pair_distance']:.3f}" in report
    assert not list(straight.glob("*.png"))


def test_evaluation_is_kept_and_read_back(tmp_path, monkeypatch, capsys):
    """A repeated run with the same weights, settings and images reads each model's evaluation
    back from its evaluation.json (no attack runs); another setting evaluates again."""
    from clead_edu import config, pipeline
    from clead_edu import data as ce_data
    cfg = ce_data.from_preset("quick", "digits", epochs=1, train_n=200, eval_n=40, aa_n=0, curve_n=20)
    first = json.loads(pipeline.run(cfg, tmp_path / "a", objectives=["standard"], figures=False, progress=False,
                                    threads=1).joinpath("metrics.json").read_text())
    calls = []
    real = pipeline.evaluate_model
    monkeypatch.setattr(pipeline, "evaluate_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = json.loads(pipeline.run(cfg, tmp_path / "a", objectives=["standard"], figures=False, progress=False,
                                    resume=True, threads=1).joinpath("metrics.json").read_text())
    assert calls == [] and "evaluation read back" in capsys.readouterr().out
    assert again["models"]["standard"]["accuracy"] == first["models"]["standard"]["accuracy"]
    pipeline.run(config.update(cfg, pgd_steps=5), tmp_path / "a", objectives=["standard"], figures=False,
                 progress=False, resume=True, threads=1)
    assert calls == [1]
