"""Several seeds, intervals, the validation split, the ablation and the extra sanity checks."""
import json
import math

import pytest
import torch

from clead_edu import data as D
from clead_edu import evaluate as E
from clead_edu import study as S
from clead_edu.__main__ import main

from conftest import EPS

TINY = ["--epochs", "1", "--train-n", "150", "--eval-n", "40", "--aa-n", "20", "--no-figures",
        "--no-progress"]


def test_interval_matches_textbook_values():
    """Mean and 95% t half-width: [1, 2, 3] -> 2 ± 4.303 * 1 / sqrt(3) (t_{0.975, 2} = 4.303)."""
    mean, half = S.interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert S.interval([5.0, 5.0])[1] == 0.0
    assert math.isnan(S.interval([0.5])[1])


def test_validation_split_is_disjoint_and_seeded(digits):
    """split() holds out the asked share, never overlaps, and repeats with the same seed."""
    rest, held = D.split(digits.train, 0.2, seed=3)
    assert len(held) == round(0.2 * len(digits.train)) and len(rest) + len(held) == len(digits.train)
    assert not set(rest.indices) & set(held.indices)
    assert held.indices == D.split(digits.train, 0.2, seed=3)[1].indices
    assert held.indices != D.split(digits.train, 0.2, seed=4)[1].indices
    with pytest.raises(ValueError, match="fraction"):
        D.split(digits.train, 1.0)


def test_gradient_check_catches_zero_gradients(standard_model, batch):
    """An honest model passes the input-gradient check; a quantised-input model fails it."""
    from test_evaluate import Quantised
    x, y = batch
    assert E.gradient_check(standard_model, x, y)["passed"]
    failed = E.gradient_check(Quantised(standard_model).eval(), x, y)
    assert not failed["passed"] and "100.0%" in failed["detail"]


def test_attack_checks_compare_autoattack_with_pgd(pgd_at_model, batch):
    """On an honest model AutoAttack is not weaker than PGD; a faked weaker AutoAttack fails the check."""
    x, y = batch
    res = E.robustness(pgd_at_model, x[:64], y[:64], eps=EPS, pgd_steps=10, aa_n=64)
    checks = {c["check"]: c for c in E.attack_checks(res)}
    assert checks["AutoAttack not weaker than PGD"]["passed"], checks
    res["correct"]["autoattack"] = torch.ones(64, dtype=torch.bool)   # pretend AA broke nothing
    assert not {c["check"]: c for c in E.attack_checks(res)}["AutoAttack not weaker than PGD"]["passed"]


def test_restarts_only_lower_accuracy(pgd_at_model, batch):
    """PGD with 3 restarts (robust = survives all) is never above one run, per example."""
    from functools import partial
    x, y = batch
    torch.manual_seed(0)
    once = E.correct(pgd_at_model, x, y, partial(E.pgd, eps=EPS, steps=5))
    torch.manual_seed(0)
    three = E.correct_restarts(pgd_at_model, x, y, partial(E.pgd, eps=EPS, steps=5), restarts=3)
    assert not (three & ~once).any() and three.sum() <= once.sum()


def test_study_two_seeds_and_continue(tmp_path, capsys):
    """`study` writes per-seed runs and a summary with intervals and the paired C-LEAD - PGD-AT row;
    a second call reuses the finished seeds; other settings in the same folder are refused."""
    out = tmp_path / "study"
    args = ["study", "--seeds", "0,1", "--objectives", "pgd_at,clead", "--out", str(out), *TINY]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    assert len(summary["accuracy"]["clead"]["pgd20"]) == 2
    diff = summary["clead_minus_pgd_at"]["clean"]
    assert diff == pytest.approx([c - p for c, p in zip(summary["accuracy"]["clead"]["clean"],
                                                        summary["accuracy"]["pgd_at"]["clean"])])
    text = (out / "summary.md").read_text()
    assert "C-LEAD − PGD-AT" in text and "Sanity checks:" in text and "±" in text
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("reusing") == 2
    with pytest.raises(SystemExit, match="other settings"):
        main([*args, "--lam", "0.5"])


def test_ablation_on_validation_split(tmp_path):
    """`ablate` trains each variant on the training split only and picks one by validation PGD accuracy."""
    out = tmp_path / "abl"
    assert main(["ablate", "--seeds", "0", "--variants", "default,lam=2,PGD-AT (reference)",
                 "--out", str(out), *TINY]) == 0
    rows = [json.loads(line) for line in (out / "ablation.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["default", "lam=2", "PGD-AT (reference)"]
    assert all(0 <= r["val_clean"] <= 1 and 0 <= r["val_pgd"] <= 1 for r in rows)
    text = (out / "ablation.md").read_text()
    assert "**(chosen)**" in text and "the test split is not used" in text
    assert "PGD-AT (reference) **(chosen)**" not in text
