"""objectives: one record per objective; data: one record per dataset; arms."""
from dataclasses import replace

import pytest

from clead_edu import config as C
from clead_edu import data as D
from clead_edu import objectives as O


def test_every_record_is_complete_and_names_what_is_registered():
    """Each objective's record has a callable step and a label; the released reading starts from
    the standard model and finishes with the probe its arm names; the registry check passes."""
    O.check_registry()
    assert all(callable(o.step) and o.label for o in O.OBJECTIVES.values())
    assert O.get("clead_released").starts_from == "standard" and O.get("clead_released").finish
    assert {n for n, o in O.OBJECTIVES.items() if o.figures} == {"standard", "pgd_at", "clead"}
    with pytest.raises(ValueError, match="unknown objective 'nope'.*clead_joint"):
        O.get("nope")


@pytest.mark.parametrize("change, named", [
    (lambda r: {**r, "clead_released": replace(r["clead_released"], starts_from="stdandard")}, "stdandard"),
    (lambda r: {**r, "clead": replace(r["clead"], paired=("pgd_att",))}, "pgd_att"),
    (lambda r: {**r, "clead": replace(r["clead"], reads=("lamb",))}, "lamb"),
])
def test_registry_check_names_what_differs(change, named):
    with pytest.raises(RuntimeError, match=named):
        O.check_registry(change(dict(O.OBJECTIVES)))


def test_old_objective_names_are_arms_with_the_same_settings():
    """Each name published results use that is an arm now reads as a valid arm; the released
    reading's four brackets are its start and its probe."""
    arms = {old: O.arm(new) for old, new in O.OLD_NAMES.items()}
    assert arms["clead_lam0"] == ("clead", {"lam": 0.0})
    assert arms["clead_released_at_advprobe"] == ("clead_released", {"start": "pgd_at", "probe": "adversarial"})
    assert O.label("clead_lam0") == O.label("clead[lam=0]") == "C-LEAD [lam=0]"


def test_an_arm_may_change_only_what_its_objective_reads():
    """An arm changes the loop's settings or the ones its record reads; anything else is refused."""
    assert O.arm("pgd_at[eps=4/255,epochs=2]") == ("pgd_at", {"eps": 4 / 255, "epochs": 2})
    assert O.arm_key("clead[lam=0.0]") == "clead[lam=0]"
    with pytest.raises(ValueError, match="pgd_at does not read lam"):
        O.arm("pgd_at[lam=2]")
    with pytest.raises(ValueError, match="probe must be one of"):
        O.arm("clead_released[probe=dirty]")


def test_every_dataset_record_has_a_threat_model_and_a_loader():
    """data.DATASETS is the one list: from_preset reads each record's eps (and its quick-preset
    changes), and get_data's error for an unknown name lists exactly these names."""
    for name, rec in D.DATASETS.items():
        cfg = D.from_preset("quick", name.replace("PATH", "/any/tree"))
        assert cfg.eps == rec.eps and callable(rec.load)
    assert D.from_preset("quick", "cifar10-sample").train.epochs == D.DATASETS["cifar10-sample"].quick["epochs"]
    assert D.from_preset("full", "imagenette").arch == D.DATASETS["imagenette"].full_arch
    with pytest.raises(ValueError) as err:
        D.get_data("nonsense")
    assert ", ".join(D.DATASETS) in str(err.value)


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
    with pytest.raises(ValueError, match="unknown objective"):
        O.arm("nope[lam=1]")
    for bad, words in [("clead[lam=x]", "expected float"),
                       ("clead[lamb=1]", "not name=value"), ("clead[lam=1", "spelled"),
                       ("clead[seed=3]", "not name=value"), ("clead[eps=8]", "0-255 units"),
                       ("clead[head_dim=1.5]", "expected int"), ("clead[joint_bn=yes]", "expected bool")]:
        with pytest.raises(ValueError, match=words):
            C.parse_arm(bad)
