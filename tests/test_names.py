"""One place per name: an objective's or a dataset's name is written, as a string, only in its
record (objectives.py, data.py) and in the preset defaults (config.py; the ablation's named arms,
study.VARIANTS; the lessons' pretrained bundle, course/pretrained.py). Everything else reads the
records, so a new defense or dataset is added in one place."""
import ast

import pytest

from conftest import REPO

import clead_edu as ce

PACKAGE = REPO / "clead_edu"
RECORDS_AND_PRESETS = {"objectives.py", "data.py", "config.py", "course/pretrained.py",
                       "graders.py"}            # graders: an exercise's fixed training settings
PRESET_TABLES = {"study.py": {"VARIANTS"}}
OTHER_MEANING = {"evaluate.py": {"standard"}, "report.py": {"standard"}}   # AutoAttack's standard version


def names() -> set[str]:
    return set(ce.objectives.OBJECTIVES) | set(ce.objectives.OLD_NAMES) | {k.split(":")[0] for k in ce.data.DATASETS}


def strays(path, known: set[str], package=PACKAGE) -> list[str]:
    """'file:line value' of each string constant (docstrings aside) naming an objective, an arm
    of one or a dataset, outside the top-level assignments PRESET_TABLES allows in that file."""
    rel = path.relative_to(package).as_posix()
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    allowed = {id(c) for n in tree.body if isinstance(n, ast.Assign)
               and {getattr(t, "id", None) for t in n.targets} & PRESET_TABLES.get(rel, set()) for c in ast.walk(n)}
    return [f"{rel}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs | allowed
            and n.value.split("[")[0].split(":")[0] in known - OTHER_MEANING.get(rel, set())]


def test_no_objective_or_dataset_name_outside_its_record_and_the_presets():
    known = names()
    found = [s for p in sorted(PACKAGE.rglob("*.py")) if p.relative_to(PACKAGE).as_posix() not in RECORDS_AND_PRESETS
             for s in strays(p, known)]
    assert found == []


def test_the_check_finds_a_name_written_elsewhere(tmp_path):
    """The check is not blind: a module that special-cases an objective or an arm is caught."""
    copy = tmp_path / "pipeline.py"
    copy.write_text((PACKAGE / "pipeline.py").read_text() + '\n\ndef special(name):\n    """Docstrings may say '
                    'clead."""\n    return name == "clead[lam=0]" or name == "pgd_at"\n')
    assert [s.split(" ")[1] for s in strays(copy, names(), tmp_path)] == ["'clead[lam=0]'", "'pgd_at'"]


def test_settings_published_under_an_older_name_still_read():
    """The controls study's metrics were written when `head_input` was `released_head_input`:
    RunConfig.from_dict reads them (config.OLD_SETTINGS), and an unknown name is still refused."""
    import json
    from clead_edu.config import RunConfig
    settings = json.loads((REPO / "docs/results/cifar10-mini-controls-seed0-metrics.json").read_text())["settings"]
    assert "released_head_input" in settings["train"]
    assert RunConfig.from_dict(settings).train.head_input == settings["train"]["released_head_input"]
    with pytest.raises(TypeError):
        RunConfig.from_dict({**settings, "train": {**settings["train"], "no_such_setting": 1}})


def test_pretrained_models_saved_under_an_older_setting_name_are_found(tmp_path, monkeypatch):
    """The pretrained bundle's models record `released_head_input`; the lessons still load them
    (checkpoints.with_defaults reads the old name) instead of asking to train."""
    import zipfile
    bundle = REPO / "clead_edu/assets/pretrained/cifar10-sample-quick.zip"
    with zipfile.ZipFile(bundle) as z:
        meta = next(n for n in z.namelist() if n.startswith("standard") and n.endswith("model.json"))
        assert "released_head_input" in z.read(meta).decode()
    monkeypatch.setenv("CLEAD_EDU_NO_TRAINING", "1")
    L = ce.setup("quick", "cifar10-sample", run_dir=tmp_path, threads=1)
    model, _ = L.model("standard")
    assert not model.training
