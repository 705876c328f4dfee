"""The report writers' statistics."""

import math

import pytest

from clead_edu.report import interval


def test_interval_matches_textbook_values():
    """Mean and 95% t half-width: [1, 2, 3] -> 2 ± 4.303 * 1 / sqrt(3) (t_{0.975, 2} = 4.303)."""
    mean, half = interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert interval([5.0, 5.0])[1] == 0.0
    assert math.isnan(interval([0.5])[1])


def test_summary_pairs_every_compared_reading_with_pgd_at():
    """summarize: paired differences minus PGD-AT, seed by seed, for clead and clead_released."""
    from clead_edu.report import summarize

    def seed(s, pgd, clead, released):
        models = {n: {"accuracy": {"clean": v, "pgd20": v / 2}, "sanity_checks": []}
                  for n, v in (("pgd_at", pgd), ("clead", clead), ("clead_released", released))}
        return {"settings": {"train": {"seed": s}}, "models": models}
    out = summarize([seed(0, 0.5, 0.6, 0.2), seed(1, 0.7, 0.6, 0.4)])
    assert out["paired_minus_pgd_at"]["clead_released"]["clean"] == pytest.approx([-0.3, -0.3])
    assert out["paired_minus_pgd_at"]["clead"]["pgd20"] == pytest.approx([0.05, -0.05])
    assert out["clead_minus_pgd_at"] == out["paired_minus_pgd_at"]["clead"]


def test_summary_pairs_the_arms_with_the_lam0_control(tmp_path):
    """C-LEAD and the joint arm minus the lam=0 control, seed by seed, beside their rows minus
    PGD-AT; the summary table has both kinds of paired rows."""
    from clead_edu.config import RunConfig
    from clead_edu.report import summarize, write_summary

    def seed(s, values):
        models = {n: {"accuracy": {"clean": v, "pgd20": v / 2}, "sanity_checks": [], "train_seconds": 1.0}
                  for n, v in values.items()}
        settings = RunConfig().to_dict()
        settings["train"]["seed"] = s
        return {"settings": settings, "models": models, "seconds": {"total": 5.0}, "device": "cpu", "torch": "x"}
    metrics = [seed(0, {"pgd_at": 0.5, "clead": 0.6, "clead[lam=0]": 0.55, "clead_joint": 0.4}),
               seed(1, {"pgd_at": 0.7, "clead": 0.6, "clead[lam=0]": 0.7, "clead_joint": 0.8})]
    out = summarize(metrics)
    assert out["paired"]["clead[lam=0]"]["clead"]["clean"] == pytest.approx([0.05, -0.1])
    assert out["paired"]["clead[lam=0]"]["clead_joint"]["pgd20"] == pytest.approx([-0.075, 0.05])
    assert out["paired"]["pgd_at"]["clead[lam=0]"]["clean"] == pytest.approx([0.05, 0.0])
    text = write_summary(tmp_path, metrics, "python -m clead_edu study")
    assert "| **C-LEAD − C-LEAD [lam=0]** (paired) | -2.5 ± " in text
    assert "| **C-LEAD − PGD-AT** (paired) |" in text and "| **C-LEAD joint perturbation − PGD-AT** (paired) |" in text
    assert text.index("− PGD-AT** (paired)") < text.index("− C-LEAD [lam=0]** (paired)")


def test_summary_has_the_pair_metrics_with_intervals(tmp_path):
    """The study's summary: each model's pair metrics over seeds (mean ± 95% interval) and C-LEAD
    minus PGD-AT seed by seed; without pair metrics a sentence, never an empty table."""
    from clead_edu.config import RunConfig
    from clead_edu.report import interval, summarize, write_summary

    def seed(s, feats):
        settings = RunConfig().to_dict()
        settings["train"]["seed"] = s
        models = {n: {"accuracy": {"clean": 0.5}, "sanity_checks": [], "train_seconds": 1.0} for n in feats}
        fs = {n: {"pair_distance": d, "centroid_distance": 1.0, "relative_pair_distance": 2 * d,
                  "adv_nn_accuracy": a} for n, (d, a) in feats.items()}
        return {"settings": settings, "models": models, "feature_space": fs, "seconds": {"total": 5.0},
                "device": "cpu", "torch": "x", "images": {"train": 100, "eval": 40}}
    metrics = [seed(0, {"pgd_at": (0.02, 0.3), "clead": (0.01, 0.2)}),
               seed(1, {"pgd_at": (0.04, 0.5), "clead": (0.01, 0.3)}),
               seed(2, {"pgd_at": (0.03, 0.4), "clead": (0.02, 0.4)})]
    fs = summarize(metrics)["feature_space"]
    assert fs["values"]["clead"]["pair_distance"] == [0.01, 0.01, 0.02]
    assert fs["paired"]["clead"]["pair_distance"] == pytest.approx([-0.01, -0.03, -0.01])
    assert fs["paired"]["clead"]["adv_nn_accuracy"] == pytest.approx([-0.1, -0.2, 0.0])
    text = write_summary(tmp_path, metrics, "python -m clead_edu study")
    m, h = interval([-0.01, -0.03, -0.01])
    assert f"| **C-LEAD − PGD-AT** (paired) | {m:.3f} ± {h:.3f} | " in text
    assert "| PGD-AT | 0.030 ± " in text and "On the first 40 evaluation images" in text
    for m in metrics:
        del m["feature_space"]
    text = write_summary(tmp_path, metrics, "python -m clead_edu study")
    section = text.split("## Feature space")[1]
    assert "Not measured" in section and "| model |" not in section


def test_report_keeps_one_image_set_per_row(tmp_path):
    """AutoAttack on 40 of 128 images: the main table holds the 40-image numbers in every
    column, and the 128-image numbers appear only in a second table without AutoAttack."""
    from clead_edu.config import RunConfig
    from clead_edu.report import write_report
    res = {"accuracy": {"clean": 0.625, "pgd20": 0.375, "autoattack": 0.3, "worst_case": 0.275},
           "accuracy_eval": {"clean": 0.7, "pgd20": 0.45}, "worst_case_n": 40, "eval_n": 128,
           "sanity_checks": []}
    write_report(tmp_path, RunConfig(), {"pgd_at": res}, {}, [], {"pgd_at": 1.0, "total": 2.0})
    text = (tmp_path / "report.md").read_text()
    main, rest = text.split("The table above uses the first 40 evaluation images")
    assert "| PGD-AT | 62.5 | 37.5 | 30.0 | 27.5 | 1 |" in main and "70.0" not in main
    assert "all 128 evaluation images" in rest and "| PGD-AT | 70.0 | 45.0 |" in rest
    res.update(worst_case_n=128, accuracy_eval=res["accuracy"])
    write_report(tmp_path, RunConfig(), {"pgd_at": res}, {}, [], {"pgd_at": 1.0, "total": 2.0})
    assert "The table above uses" not in (tmp_path / "report.md").read_text()


def test_table_aligns_and_formats():
    """report.table: a header, one line per name, columns right-aligned; percentages by default,
    or the given formats (which also choose the columns)."""
    from clead_edu.report import table
    rows = {"Standard": {"clean": 0.995, "pgd20": 0.01}, "PGD-AT": {"clean": 0.97, "pgd20": 0.6543}}
    assert table(rows).splitlines() == ["model     clean  pgd20",
                                        "Standard  99.5%   1.0%",
                                        "PGD-AT    97.0%  65.4%"]
    assert table(rows, {"pgd20": "{:.3f}"}).splitlines() == ["model     pgd20", "Standard  0.010", "PGD-AT    0.654"]


def table_without_rows(text: str) -> list[str]:
    """Header lines of Markdown tables in `text` that have no row after their |---| line."""
    lines = text.splitlines()
    return [lines[i - 1] for i, line in enumerate(lines)
            if line.startswith("|---") and not (i + 1 < len(lines) and lines[i + 1].startswith("| "))]


def test_report_never_prints_an_empty_table(tmp_path):
    """With pair metrics: one row per model, the images named. Without (umap_n 0): a sentence
    saying why, and no table without rows anywhere in the report."""
    from clead_edu.config import RunConfig
    from clead_edu.data import from_preset
    from clead_edu.report import write_report
    res = {"accuracy": {"clean": 0.9, "pgd20": 0.4}, "worst_case_n": 60, "eval_n": 60, "sanity_checks": []}
    feats = {"pgd_at": {"pair_distance": 0.0421, "centroid_distance": 0.5, "relative_pair_distance": 0.0842,
                        "adv_nn_accuracy": 0.55}}
    write_report(tmp_path, RunConfig(), {"pgd_at": res}, feats, [], {"pgd_at": 1.0, "total": 2.0},
                 {"train": 100, "eval": 60})
    text = (tmp_path / "report.md").read_text()
    assert "| PGD-AT | 0.042 | 0.084 | 55.0% |" in text and "first 60 evaluation images" in text
    assert table_without_rows(text) == []
    cfg = from_preset("quick", "digits", umap_n=0)
    write_report(tmp_path, cfg, {"pgd_at": res}, {}, [], {"pgd_at": 1.0, "total": 2.0})
    text = (tmp_path / "report.md").read_text()
    assert "Not measured in this run" in text and "umap_n was 0" in text
    assert "pair distance |" not in text and table_without_rows(text) == []
    assert table_without_rows("| a |\n|---|\n\ntext") == ["| a |"]       # the check itself finds one


def test_describe_names_the_autoattack_run_or_says_none_ran():
    """The settings paragraph says which AutoAttack ran on how many images, with the standard
    check when there is one, and "not run" (not "None version on the first 0") without it."""
    from clead_edu.data import from_preset
    from clead_edu.report import describe
    ran = describe(from_preset("quick", "digits", autoattack="apgd", aa_n=50, aa_check_n=20))
    assert "AutoAttack: apgd version on the first 50 test images" in ran and "standard version on the first 20" in ran
    none = describe(from_preset("quick", "digits", autoattack=None))
    assert "AutoAttack: not run;" in none and "None version" not in none
    assert "every attack on the AutoAttack images." in ran and "every attack. Every column" in none


def test_summary_counts_a_resumed_seed_by_its_epochs(tmp_path):
    """Training time per seed sums the epochs' recorded times, so a seed resumed from a finished
    training state (0 s of training in the run that wrote it) is not averaged in as 0 s; a result
    without timed epochs falls back to its train_seconds, or counts as not known when that run only
    read a finished state back. The whole job per seed is averaged only over the seeds whose job did
    their work."""
    from clead_edu.config import RunConfig
    from clead_edu.report import train_time, write_summary

    def seed(s, train_seconds, history):
        settings = RunConfig().to_dict()
        settings["train"]["seed"] = s
        model = {"accuracy": {"clean": 0.5}, "sanity_checks": [], "train_seconds": train_seconds, "history": history}
        return {"settings": settings, "models": {"pgd_at": model}, "seconds": {"total": 5.0}, "device": "cpu", "torch": "x"}
    resumed = seed(0, 0.1, [{"epoch": 1, "seconds": 30.0}, {"epoch": 2, "seconds": 50.0}])
    trained = seed(1, 100.0, [{"epoch": 1, "seconds": 45.0}, {"epoch": 2, "seconds": 55.0}])
    assert train_time(resumed["models"]["pgd_at"]) == 80.0
    assert train_time(seed(2, 7.0, [{"epoch": 1}])["models"]["pgd_at"]) == 7.0
    assert "Training time per seed (s): PGD-AT 90;" in write_summary(tmp_path, [resumed, trained], "study")
    # untimed epochs and a run that only read a finished state back: not known, not 0 s
    read_back = seed(3, 0.02, [{"epoch": 1}, {"epoch": 2}])
    assert train_time(read_back["models"]["pgd_at"]) is None
    assert "PGD-AT 90 (2 of 3 seeds);" in write_summary(tmp_path, [resumed, trained, read_back], "study")
    assert "PGD-AT not recorded" in write_summary(tmp_path, [read_back], "study")
    # the whole job: a seed summarised after its models were trained by other processes (5 s
    # against 80 s of training) is left out of the mean, not averaged in
    trained["seconds"]["total"] = 120.0
    assert "whole job 120 (1 of 2 seeds) per seed" in write_summary(tmp_path, [resumed, trained], "study")
    assert "whole job not recorded" in write_summary(tmp_path, [resumed], "study")


def test_an_arm_is_paired_with_its_own_control_and_pgd_at():
    """C-LEAD with a head is paired with the lam-0 arm with the same head (whatever the order of
    its changes, tau aside), not with the head-less control; TRADES with PGD-AT only."""
    from clead_edu.report import paired_with
    present = ["pgd_at", "trades[beta=6]", "clead[lam=0]", "clead[lam=0,head_dim=128]",
               "clead[head_dim=128,lam=1,tau=0.1]"]
    assert paired_with("clead[head_dim=128,lam=1,tau=0.1]", present) == ("pgd_at", "clead[lam=0,head_dim=128]")
    assert paired_with("clead", present) == ("pgd_at", "clead[lam=0]")
    assert paired_with("trades[beta=6]", present) == ("pgd_at",)
    assert paired_with("clead[lam=0]", present) == ("pgd_at",)
