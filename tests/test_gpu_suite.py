"""benchmarks/gpu_suite.py, the command that measures every GPU path, here on the CPU.

The dry run executes every stage with the same code as on the GPU, at tiny sizes: the
throughput measurements (small CNN, batches of 2 and 4, one timed batch, torch.compile with
the 'eager' backend), notebook 01 through papermill (quick preset, one epoch, on a synthetic
colour-coded 32x32 ImageFolder the suite makes), and the study on that folder (one seed fast,
the same seed plain, AutoAttack 'quick'). This file took 23 minutes on this repository's 2 cores
shared with other jobs (load average 9 to 12), most of it in that dry run. The tests that use it
are marked `notebook`.
"""
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"
sys.path.insert(0, str(ROOT / "benchmarks"))
import suite_core  # noqa: E402  (benchmarks/: the suite's modules)
import suite_notebooks  # noqa: E402
import suite_study  # noqa: E402
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def suite(*args, timeout=600):
    return subprocess.run([sys.executable, str(SUITE), "--dry-run", *map(str, args)], env=ENV, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run of every stage: (output folder, bundle folder, JSON, seconds). Its budget is
    generous, so that every planned step runs however busy the machine is (the budget's cuts
    have tests of their own below)."""
    tmp = tmp_path_factory.mktemp("gpu_suite")
    t = time.time()
    proc = suite("--stage", "all", "--budget-s", "900", "--out", tmp / "out", "--bundle", tmp / "bundle",
                 timeout=3000)
    seconds = time.time() - t
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "plan" in proc.stdout
    return tmp / "out", tmp / "bundle", json.loads((tmp / "out" / "cpu.json").read_text()), seconds


@pytest.mark.notebook     # the dry run executes notebook 01 with papermill
def test_dry_run_throughput(dry_run):
    """The required keys, every planned measurement taken, every number positive and finite."""
    _, _, res, seconds = dry_run
    print(f"dry run of every stage: {seconds:.0f} s")
    assert res["device"] == "cpu" and res["torch"] and res["dry_run"] is True
    for key in ("epoch_s", "ratio_fast_vs_baseline"):
        assert set(res[key]) >= {"standard", "pgd_at", "clead"}
        assert all(positive(v) for v in res[key].values()), res[key]
    rows = res["throughput"]["rows"]
    # 2 batch sizes x 4 workloads x (fast, baseline), then 2 x 3 training workloads compiled
    assert len(rows) == 16 + 6 and res["stages"]["throughput"]["status"] == "ok"
    assert {(r["batch"], r["compile"]) for r in rows} == {(2, False), (4, False), (2, True), (4, True)}
    for r in rows:
        assert positive(r["images_per_s"]) and r["epoch_s"] == pytest.approx(50_000 / r["images_per_s"])
    fast128 = {r["workload"]: r["images_per_s"] for r in rows if r["batch"] == 2 and not r["compile"] and r["path"] == "fast"}
    assert res["epoch_s"]["pgd_at"] == pytest.approx(50_000 / fast128["pgd_at"])
    # PGD-10 adversarial training costs about 11 passes per image, standard training one
    assert res["epoch_s"]["pgd_at"] > 2 * res["epoch_s"]["standard"]
    for key in ("autoattack_standard_untrained", "autoattack_standard_trained"):
        assert positive(res["throughput"][key]["seconds"]) and res["throughput"][key]["images"] > 0


@pytest.mark.notebook     # the dry run executes notebook 01 with papermill
def test_dry_run_notebooks(dry_run):
    """Notebook 01 executed on the suite's folder data, with its time and the memory hook's record."""
    out, _, res, _ = dry_run
    rec = res["notebooks"]["01_standard_training"]
    assert rec["status"] == "ok" and positive(rec["wall_s"])
    assert positive(rec["kernel_peak_rss_mib"])            # the IPython start-up hook ran in the kernel
    assert rec["nvidia_smi_peak_mib"] is None and "torch_peak_allocated_mib" not in rec   # no GPU here
    nb = json.loads((out / rec["executed"]).read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the figures are missing"
    text = "".join("".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    assert "self-check passed" in text and "tiny-data" in text


@pytest.mark.notebook     # the dry run executes notebook 01 with papermill
def test_dry_run_study(dry_run):
    """The study ran fast and plain on one seed and its accuracies reached the JSON."""
    out, _, res, _ = dry_run
    steps = res["study"]["steps"]
    assert [s["ok"] for s in steps.values()] == [True, True] and res["stages"]["study"]["status"] == "ok"
    fast, plain = res["study"]["results"]["fast"]["seed0"], res["study"]["results"]["plain"]["seed0"]
    assert fast["fast"] is True and plain["fast"] is False
    objectives = res["stages"]["study"]["plan"]["objectives"]
    assert set(fast["accuracy"]) == set(objectives) >= {"standard", "pgd_at", "trades", "clead"}
    for acc in fast["accuracy"].values():
        assert 0 <= acc["clean"] <= 1 and acc["worst_case"] <= acc["clean"] and "autoattack" in acc
    assert "autoattack" not in plain["accuracy"]["clead"]       # the plain run skips AutoAttack
    diff = res["study"]["results"]["fast_minus_plain"]["seed0"]["clead"]
    assert diff["clean"] == pytest.approx(fast["accuracy"]["clead"]["clean"] - plain["accuracy"]["clead"]["clean"])
    assert (out / "study" / "fast" / "summary.md").exists() and (out / "study" / "plain" / "summary.md").exists()


@pytest.mark.notebook     # the dry run executes notebook 01 with papermill
def test_dry_run_bundle(dry_run):
    """--bundle leaves a tarball per stage that writes files (no checkpoints) and the JSON."""
    _, bundle, res, _ = dry_run
    files = sorted(p.name for p in bundle.iterdir())
    assert files == ["cpu.json", "notebooks.tar.gz", "study.tar.gz"]      # throughput: in the JSON
    assert json.loads((bundle / "cpu.json").read_text())["stages"] == res["stages"]
    with tarfile.open(bundle / "notebooks.tar.gz") as tar:
        names = tar.getnames()
    assert "notebooks/01_standard_training.ipynb" in names and not [n for n in names if n.endswith(".pt")]
    with tarfile.open(bundle / "study.tar.gz") as tar:
        assert "study/fast/seed0/metrics.json" in tar.getnames()


def test_failing_stage_keeps_earlier_outputs(tmp_path):
    """A stage that fails (here: the data folder does not exist) is recorded as failed at once, the
    exit code says so, and what the stage before it measured stays in the JSON and in its bundle."""
    proc = suite("--stage", "throughput,study", "--budget-s", "throughput=3", "--out", tmp_path / "out",
                 "--data", tmp_path / "not-built", "--bundle", tmp_path / "bundle", timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads((tmp_path / "out" / "cpu.json").read_text())
    assert res["stages"]["throughput"]["status"] == "ok" and res["stages"]["study"]["status"] == "failed"
    error = res["stages"]["study"]["error"]
    assert "not-built" in error and "make_cifar10_mini" in error and res["stages"]["study"]["seconds"] < 5
    rows = res["throughput"]["rows"]
    assert rows and all(positive(r["images_per_s"]) for r in rows)
    assert res["stages"]["throughput"]["skipped"]           # the 3-second budget left most measurements out
    assert len(rows) + len(res["stages"]["throughput"]["skipped"]) == 16 + 1 + 6
    assert json.loads((tmp_path / "bundle" / "cpu.json").read_text())["throughput"]["rows"] == rows


def test_killed_run_keeps_every_measurement_taken(tmp_path):
    """The JSON is rewritten after every measurement: a run killed (SIGKILL) in the middle of the
    throughput stage leaves a valid file holding the measurements taken so far."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(SUITE), "--dry-run", "--stage", "throughput", "--out", str(out)],
                            env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows, deadline = [], time.time() + 240
    try:
        while len(rows) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if (out / "cpu.json").exists():
                rows = json.loads((out / "cpu.json").read_text()).get("throughput", {}).get("rows", [])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(rows) >= 2, "no measurement was written while the suite ran"
    res = json.loads((out / "cpu.json").read_text())
    assert res["stages"]["throughput"]["status"] == "running"      # it never finished ...
    assert len(res["throughput"]["rows"]) >= 2 and all(positive(r["images_per_s"]) for r in res["throughput"]["rows"])
    assert set(res["epoch_s"]) >= {"standard"}                       # ... and its summary keys are there


def test_sizes_fit_the_budget():
    """The study's and the notebooks' epochs shrink with the budget and their estimate fits it."""
    s, guess = suite_study, suite_core.GUESS["img_s"]
    objectives = ["standard", "pgd_at", "trades", "clead"]
    small, big = s.study_epochs(objectives, 3, 240, guess), s.study_epochs(objectives, 3, 3000, guess)
    assert 1 <= small[0] < big[0] <= 30
    assert big[1]["total_s"] <= 3000 and (small[1]["total_s"] <= 240 or small[0] == 1)
    names = [p.stem for p in suite_notebooks.NOTEBOOKS]
    assert len(names) == 8
    e_small, per_epoch, fixed = suite_notebooks.notebook_epochs(names, 280, guess)
    e_big = suite_notebooks.notebook_epochs(names, 2000, guess)[0]
    assert 1 <= e_small <= e_big <= 30 and (fixed + e_big * per_epoch <= 2000)
    # measured rates, when an earlier throughput stage left them, change the plan
    slow = {k: v / 10 for k, v in guess.items()}
    assert s.study_epochs(objectives, 3, 3000, slow)[0] < big[0]


def test_study_compares_the_package_objectives():
    """The study trains what `run` compares (config.COMPARED), then clead_released."""
    from clead_edu.config import COMPARED
    assert suite_study.study_objectives() == [*COMPARED, "clead_released"]


def test_names_and_budgets():
    s = suite_core
    assert s.json_name("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3.json"
    assert s.json_name("NVIDIA H200") == "h200.json" and s.json_name("cpu") == "cpu.json"
    assert s.parse_budget("throughput=50,study=10") == {**s.BUDGET_S, "throughput": 50, "study": 10}
    assert s.parse_budget("30") == {k: 30 for k in s.STAGES}
    with pytest.raises(SystemExit):
        s.parse_budget("bogus=3")


def test_step_over_budget_is_killed_and_recorded(tmp_path):
    """A study step still running when the stage's budget ends is killed with its whole process
    group; the stage is 'partial' (not failed) and the step is marked as killed."""
    t = time.time()
    proc = suite("--stage", "study", "--budget-s", "study=1", "--out", tmp_path / "out", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert time.time() - t < 60                       # the step was stopped at 5 s, not run to its end
    res = json.loads((tmp_path / "out" / "cpu.json").read_text())
    assert res["stages"]["study"]["status"] == "partial"
    (step,) = res["study"]["steps"].values()
    assert step["ok"] is False and step["killed"] == "stage budget spent" and step["wall_s"] < 30
