"""tools/quote_numbers.py: every number the prose quotes between markers is the one its source file
gives (the lesson times of benchmarks/results/lessons-cpu.json, the studies of docs/results/, the
preset on the photos); a quote that drifts fails here."""
import json
import runpy

import pytest
from conftest import REPO

Q = runpy.run_path(str(REPO / "tools" / "quote_numbers.py"))


def test_every_quoted_number_matches_its_source(capsys):
    assert Q["main"](["--check"]) == 0, capsys.readouterr().out
    quoted = sum(len(Q["MARK"].findall(p.read_text())) for p in Q["prose_files"]())
    assert quoted >= 30                       # README, guide, course page, headers, solutions


def test_a_changed_quote_is_found_and_rewritten_from_the_source(tmp_path):
    run = json.loads((REPO / "benchmarks/results/lessons-cpu.json").read_text())
    total = f"{run['total_s']:.0f} s"
    page = tmp_path / "page.md"
    page.write_text("All eight: <!-- number:lessons.total -->1 s<!-- /number -->, "
                    "06: <!-- number:lessons.06.s -->0<!-- /number -->.\n")
    found = Q["process"](page, check=True)
    assert len(found) == 2 and "lessons.total: quoted '1 s', source " + repr(total) in found[0]
    assert "1 s" in page.read_text()                            # --check changes nothing
    Q["process"](page, check=False)
    assert page.read_text() == (f"All eight: <!-- number:lessons.total -->{total}<!-- /number -->, 06: "
                                f"<!-- number:lessons.06.s -->{run['seconds']['06_evaluating_robustness.ipynb']:.0f}"
                                "<!-- /number -->.\n")
    assert Q["process"](page, check=True) == []


def test_numbers_follow_their_sources():
    """The controls study's paired worst case as docs/results.md section 8 prints it; the photos'
    AutoAttack images from their dataset record's quick-preset changes; an arm by its slug and a
    bootstrap interval, in numbers and in words; an unknown key is refused."""
    from clead_edu.data import DATASETS
    assert Q["number"]("controls.diff.pgd_at.clead.worst_case") == "−1.8 ± 1.3"
    assert Q["number"]("controls.diff.clead_lam0.clead.worst_case") == "−2.2 ± 1.0"
    assert Q["number"]("controls.seeds") == "5" and Q["number"]("controls.eval_n") == "517"
    assert Q["number"]("controls.diff.clead_lam0.clead.worst_case.below") == "5 of 5"   # below on every seed
    assert Q["number"]("controls.pairabove.clead.pair_distance") == "0 of 5"          # its twins closer on all
    assert Q["number"]("pairs.pairint.pgd_at.pair_distance") == "0.010 ± 0.000"        # lesson 07's table
    assert Q["number"]("pairs.pairint.clead.adv_nn_accuracy") == "23.9 ± 2.5%"
    assert Q["number"]("photos.aa_n") == str(DATASETS["cifar10-sample"].quick["aa_n"])
    # an arm with settings is spelled by its slug, whose dots split it into several parts
    arms = ["pgd_at", "clead[head_dim=128,lam=1,tau=0.1]", "clead[lam=0]"]
    assert Q["arm_parts"](["acc", "clead-head_dim-128-lam-1-tau-0", "1", "clean"], arms) == \
        ["acc", "clead[head_dim=128,lam=1,tau=0.1]", "clean"]
    study = {"accuracy": dict.fromkeys(arms), "paired_bootstrap": {"pgd_at": {"clead[lam=0]": {"clean": [0.012, -0.003, 0.027]}}}}
    assert Q["study_number"](study, ["boot", "pgd_at", "clead-lam-0", "clean"]) == "+1.2 [−0.3, +2.7]"
    # the same interval in words: zero inside it is "level with"; wholly one side, "above" / "below"
    words = {}
    for ends in ([0.012, -0.003, 0.027], [0.02, 0.001, 0.04], [-0.02, -0.04, -0.001]):
        study["paired_bootstrap"]["pgd_at"]["clead[lam=0]"]["clean"] = ends
        words[ends[1] > 0, ends[2] < 0] = Q["study_number"](study, ["side", "pgd_at", "clead-lam-0", "clean"])
    assert words == {(False, False): "level with", (True, False): "above", (False, True): "below"}
    site = json.loads((REPO / "benchmarks/results/site-cpu.json").read_text())   # the README's site build
    assert Q["number"]("site.wall_min") == f"{site['wall_s'] / 60:.1f} minutes"
    assert Q["number"]("site.pages") == str(site["pages"]) and Q["number"]("site.mib").endswith(" MiB")
    with pytest.raises(ValueError, match="unknown number 'site.speed'"):
        Q["number"]("site.speed")
    with pytest.raises(ValueError, match="unknown number 'lessons.09'"):
        Q["number"]("lessons.09")


def test_the_spread_of_the_seeds_matches_scipy():
    """solutions/08's seeds-and-pairing numbers: the unpaired half-widths are scipy's two-sample
    intervals (pooled and Welch's); the paired ones and the seed count follow the t formula."""
    from scipy import stats
    a, b = [0.01, 0.02, 0.03], [0.01, 0.03, 0.05]             # B − A per seed: 0, 1, 2 points
    study = {"accuracy": {"A": {"m": a}, "B": {"m": b}}}
    spread = lambda kind: Q["spread_number"](study, "A", "B", "m", kind)     # noqa: E731
    assert (spread("sd"), spread("sda"), spread("sdb"), spread("sdindep"), spread("corr")) == \
        ("1.0", "1.0", "2.0", "2.2", "1.0")
    for kind, equal_var in (("pooled", True), ("welch", False)):
        low, high = stats.ttest_ind([100 * v for v in b], [100 * v for v in a], equal_var=equal_var).confidence_interval()
        assert spread(kind) == f"{(high - low) / 2:.1f}"
    assert spread("half3") == f"{stats.t.ppf(0.975, 2) / 3 ** 0.5:.2f}"
    assert spread("seeds1") == "7"        # t(0.975, 5) / sqrt(6) = 1.05 > 1; t(0.975, 6) / sqrt(7) = 0.92


def test_every_measured_number_in_the_results_summary_is_quoted_from_its_file():
    """docs/results.md's "In short" list: with the quoted numbers taken out, what is left holds
    no measured number, only names and settings (section numbers, PGD-20, ResNet-18, CIFAR-10,
    the settings of a run, the summary's +3.2 and the 95% of an interval)."""
    import re
    text = (REPO / "docs" / "results.md").read_text()
    summary = text[text.index("**In short.**"):text.index("Every number below was measured")]
    assert len(Q["MARK"].findall(summary)) >= 25
    bare = Q["MARK"].sub("", summary)
    allowed = r"section \d+|PGD-\d+|ResNet-18|CIFAR-10+|cifar10|\+3\.2|95%|lam 0|batch 64|\d+ epochs|three-view|three seeds"
    left = re.findall(r"\d[\d.]*", re.sub(allowed, "", bare))
    assert not left, f"numbers in the summary not written from a file: {left}"
