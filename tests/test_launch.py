"""`study --jobs N`: the seeds side by side in processes here, or through submitit (its local
executor runs the cluster code path on this machine)."""
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ENV, REPO

from clead_edu import launch as L
from clead_edu.__main__ import main

TINY = ["--seeds", "0,1", "--objectives", "pgd_at", "--epochs", "1", "--train-n", "120", "--eval-n", "30",
        "--train-steps", "1", "--autoattack", "none", "--no-figures", "--no-progress"]


def accuracies(out) -> dict:
    return {s: json.loads((out / f"seed{s}" / "metrics.json").read_text())["models"]["pgd_at"]["accuracy"]
            for s in (0, 1)}


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory):
    """A 2-seed study run as 2 processes; returns its folder."""
    out = tmp_path_factory.mktemp("jobs") / "study"
    assert main(["study", *TINY, "--jobs", "2", "--out", str(out)]) == 0
    return out


def test_two_jobs_run_in_two_processes_with_split_threads(two_jobs, capsys):
    """Each seed ran in its own process (not this one), with max(1, CPUs // 2) threads, its
    output in its folder's log.txt; the summary covers both seeds; a second call reuses them."""
    record = json.loads((two_jobs / "launch.json").read_text())
    workers = record["tasks"]
    assert list(workers) == ["seed 0", "seed 1"] and record["launch"]["jobs"] == 2
    assert {w["pid"] for w in workers.values()} != {os.getpid()} and len({w["pid"] for w in workers.values()}) == 2
    assert all(w["threads"] == L.worker_threads(2) for w in workers.values())
    assert all("[clead_edu]" in (two_jobs / f"seed{s}" / "log.txt").read_text() for s in (0, 1))
    assert json.loads((two_jobs / "summary.json").read_text())["seeds"] == [0, 1]
    before = accuracies(two_jobs)
    assert main(["study", *TINY, "--jobs", "2", "--out", str(two_jobs)]) == 0
    assert all("reusing" in (two_jobs / f"seed{s}" / "log.txt").read_text() for s in (0, 1))
    assert accuracies(two_jobs) == before


def test_submitit_local_executor_gives_the_same_study(two_jobs, tmp_path):
    """--launcher local (submitit's LocalExecutor, the cluster code path) runs each seed as a
    submitit job, with the same thread split, and reproduces the process pool's numbers."""
    pytest.importorskip("submitit")
    out = tmp_path / "local"
    assert main(["study", *TINY, "--jobs", "2", "--launcher", "local", "--time", "10", "--out", str(out)]) == 0
    record = json.loads((out / "launch.json").read_text())
    assert record["launch"]["launcher"] == "local" and (out / "submitit").is_dir()
    assert all(w["pid"] != os.getpid() and w["threads"] == L.worker_threads(2) for w in record["tasks"].values())
    assert accuracies(out) == accuracies(two_jobs)


def test_worker_threads_split_the_cpus():
    assert L.worker_threads(3, available=16) == 5
    assert L.worker_threads(4, available=2) == 1
    assert L.worker_threads(1, available=8) == 8


def test_slurm_executor_gets_partition_time_and_resources(tmp_path, monkeypatch):
    """The slurm launcher hands its options to submitit's SlurmExecutor: they are in the sbatch
    script it would submit (nothing is submitted; a stand-in `srun` on PATH plays the cluster)."""
    pytest.importorskip("submitit")
    (tmp_path / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    ex = L.executor(L.Launch(jobs=5, launcher="slurm", partition="gpu", time=90, cpus_per_job=8, gpus_per_job=1),
                    tmp_path)
    script = ex._make_submission_file_text("python -m task", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --job-name=clead_edu"):
        assert line in script, line


@pytest.mark.parametrize("kw, message", [({"launcher": "slurm"}, "partition"), ({"launcher": "pbs"}, "launcher"),
                                         ({"jobs": 0}, "jobs")])
def test_bad_launch_settings(kw, message):
    with pytest.raises(ValueError, match=message):
        L.Launch(**kw)


def test_launcher_without_submitit_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)            # import submitit -> ImportError
    with pytest.raises(ValueError, match="pip install submitit"):
        L.executor(L.Launch(launcher="local"), tmp_path)


def test_study_help_shows_jobs_and_launcher():
    res = subprocess.run([sys.executable, "-m", "clead_edu", "study", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env=ENV)
    assert res.returncode == 0, res.stderr
    for opt in ("--jobs", "--launcher", "slurm", "--partition", "--time"):
        assert opt in res.stdout, opt


PARENT = """
import sys, time
from clead_edu.launch import process_pool

def task(path):
    import os, time
    open(path, "w").write(str(os.getpid()))
    time.sleep(120)                     # a long training task

if __name__ == "__main__":
    with process_pool(1) as pool:
        pool.submit(task, sys.argv[1]).result()
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")
def test_workers_end_when_the_parent_is_killed(tmp_path):
    """SIGTERM to the process that holds the pool (the command's process): its worker, busy with
    a long task, is gone within seconds instead of running on unseen."""
    import signal
    script, pid_file = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        for _ in range(600):
            if pid_file.is_file() and pid_file.read_text():
                break
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        os.kill(worker, 0)                                  # running
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
        for _ in range(100):
            if not alive(worker):
                break
            time.sleep(0.1)
        assert not alive(worker), "the worker outlived its parent"
    finally:
        parent.kill()
        if pid_file.is_file() and pid_file.read_text() and alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie or a missing process counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
