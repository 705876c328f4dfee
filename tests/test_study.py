"""Several seeds, intervals, the validation split, the ablation and the extra sanity checks."""
import json

import pytest

from clead_edu.__main__ import main

TINY = ["--epochs", "1", "--train-n", "150", "--eval-n", "40", "--aa-n", "20", "--no-figures",
        "--no-progress"]


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
    assert main([*args, "--lam", "0.5"]) == 2
    assert "holds a study with other settings" in capsys.readouterr().err


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
