"""Self-checks: right/wrong with a hint, silent on the answer; the solutions agree with them."""
import json
import re

import pytest
import torch
from conftest import REPO

from clead_edu import exercises as E
from clead_edu import study

SOLUTIONS = REPO / "solutions"


def short_answers() -> dict[str, str]:
    """{key: answer} from the '**Answer (check key NN.K):** text' lines of solutions/*.md."""
    found = {}
    for path in sorted(SOLUTIONS.glob("*.md")):
        for key, text in re.findall(r"\*\*Answer \(check key (\d\d\.\d)\):\*\* `([^`]+)`", path.read_text()):
            found[key] = text
    return found


def shown_data() -> dict:
    """{key: data} for the self-checks about the data a lesson showed: 08.1 reads the worst-case
    differences of the study lesson 08 shows on a CPU, the one shipped with the package."""
    return {"08.1": study.published("cifar10-mini")["paired_minus_pgd_at"]["clead"]["worst_case"]}


def test_every_stored_answer_has_a_worked_solution_that_the_check_accepts(capsys):
    answers = short_answers()
    assert set(answers) == set(E.ANSWERS)
    data = shown_data()
    for key, text in answers.items():
        assert E.check(key, text, data.get(key)) is True, key
        assert E.check(key, text.upper() + " ", data.get(key)) is True     # case and spacing do not matter
    assert "right!" in capsys.readouterr().out


def test_wrong_answer_gets_the_hint_and_no_answer(capsys):
    assert E.check("05.1", "TRADES") is False
    out = capsys.readouterr().out
    assert "not quite" in out and E.ANSWERS["05.1"][1] in out and "pgdat" not in E.normalise(out)


def test_a_question_about_the_data_follows_the_data(capsys):
    """08.1 (does the worst-case interval contain zero?) is right or wrong for the study the lesson
    showed, the shipped one or a student's own on a GPU; asked without that data it says so."""
    straddles, below = [-0.03, -0.01, 0.005], [-0.03, -0.025, -0.02]      # per-seed differences
    assert E.check("08.1", "yes", straddles) is True and E.check("08.1", "no", straddles) is False
    assert E.check("08.1", "no", below) is True and E.check("08.1", "Yes", below) is False
    with pytest.raises(TypeError, match="the data the lesson showed"):
        E.check("08.1", "yes")


def test_unanswered_is_a_reminder_not_a_failure(capsys):
    assert E.check("02.1", None) is None and E.check("02.1", ...) is None
    assert "write your answer first" in capsys.readouterr().out


def test_short_answers_are_labelled_ungraded_self_checks(capsys):
    """Each short answer's options are printed in its cell, so it is a self-check and says so:
    in the cell (a comment on the answer line) and in what the check prints; nothing is stored as
    a digest that would pass for a sealed answer."""
    source = (REPO / "clead_edu" / "exercises.py").read_text()
    assert "sha256" not in source.lower() and not re.search(r"[0-9a-f]{64}", source)
    for key in short_answers():
        nb = json.loads(next((REPO / "notebooks").glob(f"{key[:2]}_*.ipynb")).read_text())
        check_cells = ["".join(c["source"]) for c in nb["cells"] if f'"{key}"' in "".join(c["source"])]
        assert check_cells, f"no check cell for {key}"
        assert all(re.search(r"answer\w* = None +# self-check \d \(not graded\)", s) for s in check_cells), key
        E.check(key, "something else", shown_data().get(key))
        assert f"self-check {key} (not graded): not quite" in capsys.readouterr().out


def test_check_value_compares_tensors():
    ref = torch.tensor([True, False, True])
    assert E.check_value("06.1", ref.clone(), ref, hint="h") is True
    assert E.check_value("06.1", torch.tensor([True, True, True]), ref, hint="h") is False
    assert E.check_value("06.1", torch.tensor([True]), ref, hint="h") is False     # wrong shape
    assert E.check_value("06.1", None, ref, hint="h") is None


def test_unknown_key_fails_clearly():
    with pytest.raises(KeyError):
        E.check("99.9", "x")
