"""The main job (`python -m clead_edu run`) end to end on a tiny setting."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from clead_edu import checkpoints as CK
from clead_edu import data as D
from clead_edu.__main__ import main
from clead_edu.evaluate import accuracy

MODELS = {"standard": "Standard", "pgd_at": "PGD-AT", "trades": "TRADES", "clead": "C-LEAD"}
TINY = ["--epochs", "1", "--train-n", "200", "--eval-n", "40", "--aa-n", "20", "--umap-n", "40",
        "--no-progress"]



@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Run the main job once on a tiny setting; returns (output folder, seconds taken)."""
    out = tmp_path_factory.mktemp("main") / "run"
    t = time.time()
    assert main(["run", "--out", str(out), *TINY]) == 0
    return out, time.time() - t


def test_writes_every_output(tiny_run):
    """report.md, metrics.json, the four figures and a checkpoint per objective are written."""
    out, seconds = tiny_run
    for name in ("report.md", "metrics.json", "accuracy_vs_eps.png", "umap_pairs.png",
                 "adversarial_examples_standard.png", "adversarial_examples_clead.png"):
        assert (out / name).stat().st_size > 0, name
    for obj in MODELS:
        assert (out / obj / "model.pt").exists() and (out / obj / "model.json").exists(), obj
    assert (out / "umap_pairs.png").read_bytes()[:4] == b"\x89PNG"
    print(f"tiny main job took {seconds:.1f} s")


def test_metrics_json(tiny_run):
    """metrics.json has the four models, each with clean/fgsm/pgd20/autoattack/worst_case in [0, 1],
    and the training precision."""
    out, _ = tiny_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == set(MODELS)
    for name, res in metrics["models"].items():
        acc = res["accuracy"]
        assert set(acc) == {"clean", "fgsm", "pgd20", "autoattack", "worst_case"}, name
        assert all(0 <= v <= 1 for v in acc.values()), (name, acc)
        assert acc["worst_case"] <= acc["autoattack"]  # both on the first aa_n images
        assert res["worst_case_n"] == 20 and len(res["eps_curve"]) == len(metrics["eps_grid"])
    assert metrics["precision"] == "fp32"           # the CPU's; each model.json records it too
    assert all(json.loads((out / o / "model.json").read_text())["precision"] == "fp32" for o in MODELS)


def test_report_table(tiny_run):
    """report.md holds the results table with one row per model."""
    out, _ = tiny_run
    report = (out / "report.md").read_text()
    assert "| model | clean | fgsm | pgd20 | autoattack | worst_case |" in report
    for label in MODELS.values():
        assert f"| {label} |" in report, label


def test_saved_checkpoint_reproduces_reported_accuracy(tiny_run):
    """The saved standard model, reloaded from its JSON, gives the clean accuracy in metrics.json."""
    out, _ = tiny_run
    metrics = json.loads((out / "metrics.json").read_text())
    model = CK.load_checkpoint(out / "standard" / "model.pt")
    x, y = D.take(D.get_data("digits").test, 40, seed=0)
    assert accuracy(model, x, y) == pytest.approx(metrics["models"]["standard"]["accuracy"]["clean"])


def test_second_run_does_not_overwrite(tiny_run):
    """Running again into the same --out without --overwrite writes to <out>-2 and leaves <out> alone."""
    out, _ = tiny_run
    before = (out / "report.md").read_text()
    args = ["run", "--out", str(out), "--objectives", "standard", "--epochs", "1", "--train-n", "64",
            "--eval-n", "20", "--aa-n", "0", "--umap-n", "20", "--no-progress"]
    assert main(args) == 0
    second = Path(f"{out}-2")
    assert (second / "report.md").exists() and (second / "standard" / "model.pt").exists()
    assert (out / "report.md").read_text() == before


def test_help():
    """`python -m clead_edu run --help` exits 0 and documents the main options."""
    res = subprocess.run([sys.executable, "-m", "clead_edu", "run", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    for opt in ("--dataset", "--preset", "--lam", "--tau", "--mu", "--positives", "--eps", "--overwrite"):
        assert opt in res.stdout, opt


def test_explicit_default_eps_changes_nothing():
    """Passing --eps with the dataset's default value gives exactly the default settings."""
    from clead_edu.__main__ import build_parser, to_config
    ap = build_parser()
    default = to_config(ap.parse_args(["run"]))
    assert to_config(ap.parse_args(["run", "--eps", str(default.eps)])) == default


def test_every_setting_option_sets_the_field_of_its_name():
    """--train-steps sets train_steps, --aa-n sets aa_n, ...: each option of SETTINGS changes the
    RunConfig/TrainConfig/EvalConfig field spelled like it, with no table between them."""
    from clead_edu import config as C
    from clead_edu.__main__ import SETTINGS, build_parser, to_config
    ap = build_parser()
    for flag, kind, _ in SETTINGS:
        value = {int: 3, float: 0.125, str: "wide_resnet"}[kind]
        cfg = to_config(ap.parse_args(["run", flag, str(value)]))
        name = flag.lstrip("-").replace("-", "_")
        part = C._part_of(name)
        assert getattr(cfg if part == "run" else getattr(cfg, part), name) == value, flag


def cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "clead_edu", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_cli_unknown_dataset(tmp_path):
    """`run --dataset nonsense` exits non-zero, names the dataset and the choices, writes nothing."""
    out = tmp_path / "out"
    res = cli("run", "--dataset", "nonsense", "--out", str(out), "--no-progress")
    assert res.returncode != 0
    assert "nonsense" in res.stderr and "digits" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()


def test_cli_eps_in_255_units(tmp_path):
    """`run --eps 8` exits non-zero with a message mentioning /255, before writing anything."""
    out = tmp_path / "out"
    res = cli("run", "--eps", "8", "--out", str(out), "--no-progress")
    assert res.returncode != 0
    assert "/255" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()
