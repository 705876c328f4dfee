"""AutoAttack's 'apgd' version (the standard's APGD-CE and APGD-T) and its check against the
standard version on the first images; the check in the reports."""
import pytest
from conftest import EPS

from clead_edu import evaluate as E
from clead_edu.config import RunConfig
from clead_edu.report import write_report


def test_apgd_version_is_the_standard_first_two_attacks(pgd_at_model):
    """'apgd' runs APGD-CE and APGD-T with the standard version's settings (1 restart, 100
    iterations, 9 target classes); 'standard' adds FAB-T and Square."""
    apgd = E._autoattack(pgd_at_model, EPS, "apgd", "linf", 0)
    standard = E._autoattack(pgd_at_model, EPS, "standard", "linf", 0)
    assert apgd.attacks_to_run == ["apgd-ce", "apgd-t"]
    assert standard.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
    for aa in (apgd, standard):
        assert (aa.apgd.n_restarts, aa.apgd.n_iter, aa.apgd_targeted.n_target_classes) == (1, 100, 9)


def test_standard_check_beside_the_apgd_version(pgd_at_model, batch, monkeypatch):
    """With aa_check_n, the standard AutoAttack runs on the first aa_check_n AutoAttack images
    and its accuracy stands beside the version's on those same images; the agreement is a
    sanity check that fails when they differ by more than a point. (The standard version is
    replaced here by a stand-in that breaks one more image than 'apgd': the real one takes
    minutes on a CPU.)"""
    x, y = batch
    real, calls = E.run_autoattack, []

    def spy(model, xs, ys, *, eps, version, seed=0, **kw):
        calls.append((version, len(xs)))
        ok, flags = real(model, xs, ys, eps=eps, version="apgd", seed=seed)
        if version == "standard":
            ok[ok.nonzero()[0]] = False                  # FAB-T or Square found one more
        return ok, flags
    monkeypatch.setattr(E, "run_autoattack", spy)
    res = E.robustness(pgd_at_model, x[:12], y[:12], eps=EPS, pgd_steps=5, autoattack="apgd",
                       aa_n=12, aa_check_n=6)
    assert calls == [("apgd", 12), ("standard", 6)]
    c = res["autoattack_check"]
    assert c["n"] == 6 and c["version"] == pytest.approx(res["correct"]["autoattack"][:6].float().mean().item())
    assert c["standard"] == pytest.approx(c["version"] - 1 / 6, abs=1e-6) and c["version"] > 0
    check = [k for k in E.attack_checks(res) if k["check"] == "AutoAttack version agrees with the standard one"]
    assert len(check) == 1 and not check[0]["passed"]
    assert "autoattack_check" not in E.robustness(pgd_at_model, x[:8], y[:8], eps=EPS, pgd_steps=2,
                                                  autoattack=None, aa_check_n=8)


@pytest.mark.parametrize("version, passed", [(0.50, True), (0.51, True), (0.52, False)])
def test_agreement_check_allows_one_point(version, passed):
    res = {"autoattack_check": {"n": 200, "standard": 0.50, "version": version}}
    assert E.agreement_check(res)[0]["passed"] is passed
    assert E.agreement_check({}) == []


def test_report_shows_the_check(tmp_path):
    """report.md: a table with the standard version beside the version used, on the same images."""
    res = {"accuracy": {"clean": 0.6, "autoattack": 0.3, "worst_case": 0.3}, "accuracy_eval": {"clean": 0.6},
           "worst_case_n": 40, "eval_n": 40, "sanity_checks": [],
           "autoattack_check": {"n": 20, "standard": 0.25, "version": 0.30}}
    write_report(tmp_path, RunConfig(), {"pgd_at": res}, {}, [], {"pgd_at": 1.0, "total": 2.0})
    text = (tmp_path / "report.md").read_text()
    assert "standard AutoAttack on the first 20" in text
    assert "| PGD-AT | 25.0 ± n/a | 30.0 ± n/a | 5.0 ± n/a |" in text
