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
