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
