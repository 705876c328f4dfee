"""objectives: one registered step per name in config.OBJECTIVES; config's other lists of names."""
from dataclasses import replace

import pytest

from clead_edu import config as C
from clead_edu import data as D
from clead_edu import objectives as O


def test_registry_matches_config_names():
    """The registry has one entry per name config validates, and each entry's step is callable."""
    O.check_registry()
    assert tuple(O.OBJECTIVES) == C.OBJECTIVES
    assert all(callable(o.step) for o in O.OBJECTIVES.values())
    assert O.OBJECTIVES["clead_released"].starts_from == "standard"
    released = {n for n, o in O.OBJECTIVES.items() if o.finish or o.starts_from}
    assert released == {name for name, _, _ in O.RELEASED_ARMS} == {n for n in C.OBJECTIVES if "released" in n}
    assert {(O.OBJECTIVES[n].starts_from, O.OBJECTIVES[n].finish.keywords["probe"]) for n in released} == {
        ("standard", "clean"), ("pgd_at", "clean"), ("standard", "adversarial"), ("pgd_at", "adversarial")}


@pytest.mark.parametrize("change, named", [
    (lambda r: {k: v for k, v in r.items() if k != "align"}, "align"),                      # a name without a step
    (lambda r: {**r, "free_at": r["pgd_at"]}, "free_at"),                                   # a step without a name
    (lambda r: {**r, "clead_released": replace(r["clead_released"], starts_from="stdandard")}, "stdandard"),
])
def test_registry_check_names_what_differs(change, named):
    with pytest.raises(RuntimeError, match=named):
        O.check_registry(change(dict(O.OBJECTIVES)))


def test_every_dataset_name_has_a_threat_model_and_a_loader():
    """config.DATASETS is the one list: each has its eps in DATASET_DEFAULTS, from_preset accepts
    it, and get_data's error for an unknown name lists exactly these names."""
    assert tuple(C.DATASET_DEFAULTS) == C.DATASETS
    assert C.from_preset("quick", "folder:/any/tree").dataset == "folder:/any/tree"
    with pytest.raises(ValueError) as err:
        D.get_data("nonsense")
    assert ", ".join(C.DATASETS) in str(err.value)


def test_arms_spell_an_objective_and_its_changed_settings():
    """`parse_arm` reads each value as its setting's type (fractions for floats), `arm_name`
    spells it back, `split_arms` keeps commas inside brackets; every bad spelling is refused
    with the reason."""
    assert C.parse_arm("clead[lam=0.3,joint_bn=true,head_dim=128]") == (
        "clead", {"lam": 0.3, "joint_bn": True, "head_dim": 128})
    assert C.parse_arm("pgd_at[eps=4/255]") == ("pgd_at", {"eps": 4 / 255})
    assert C.parse_arm(" trades ") == ("trades", {})
    assert C.arm_name(*C.parse_arm("clead[lam=0.3,joint_bn=true]")) == "clead[lam=0.3,joint_bn=true]"
    assert C.split_arms("clead[lam=1,tau=0.5], pgd_at,trades[beta=3]") == [
        "clead[lam=1,tau=0.5]", "pgd_at", "trades[beta=3]"]
    for bad, words in [("clead[lam=x]", "expected float"), ("nope[lam=1]", "unknown objective"),
                       ("clead[lamb=1]", "not name=value"), ("clead[lam=1", "spelled"),
                       ("clead[seed=3]", "not name=value"), ("clead[eps=8]", "0-255 units"),
                       ("clead[head_dim=1.5]", "expected int"), ("clead[joint_bn=yes]", "expected bool")]:
        with pytest.raises(ValueError, match=words):
            C.parse_arm(bad)
