"""Every lesson notebook runs top to bottom in the quick preset (papermill), in order.

The notebooks share one temporary checkpoint folder, as in a course where they run
in sequence. On the photos (the default) every lesson model comes from the pretrained
bundle: CLEAD_EDU_NO_TRAINING is set, so a model that is missing from it fails the test
instead of training for minutes. On the digits each notebook also trains what it needs
when run alone. Runtimes are written to notebook_times.json in the artifacts folder
(conftest.artifacts).
"""
import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, artifacts):
    yield tmp_path_factory.mktemp("notebook_runs")
    (artifacts / "notebook_times.json").write_text(json.dumps(TIMES, indent=1))


def test_all_eight_lessons_present():
    """The sequence 01..08 is complete and each notebook has one tagged parameters cell."""
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 9)]
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb.name}: needs exactly one cell tagged 'parameters'"
        assert 'preset = "quick"' in "".join(tagged[0]["source"])
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), \
            f"{nb.name}: store notebooks without outputs"


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_preset(notebook, run_dir, tmp_path, monkeypatch):
    """The notebook executes without error in the quick preset on CPU, on the photos, with
    the pretrained models (no lesson model is trained)."""
    import papermill as pm
    monkeypatch.setenv("CLEAD_EDU_NO_TRAINING", "1")
    start = time.time()
    pm.execute_notebook(str(notebook), str(tmp_path / notebook.name), cwd=str(notebook.parent),
                        parameters={"preset": "quick", "run_dir": str(run_dir)},
                        kernel_name="python3", progress_bar=False)
    TIMES[notebook.stem] = round(time.time() - start, 1)
    print(f"{notebook.stem}: {TIMES[notebook.stem]} s")


@pytest.mark.notebook
def test_standard_training_notebook_on_digits(tmp_path):
    """01 with the digits as its dataset (the fastest CPU run) trains its model and runs
    (time recorded as 01_standard_training[digits])."""
    import papermill as pm
    nb = ROOT / "notebooks" / "01_standard_training.ipynb"
    start = time.time()
    pm.execute_notebook(str(nb), str(tmp_path / nb.name), cwd=str(nb.parent), kernel_name="python3",
                        parameters={"preset": "quick", "dataset": "digits", "run_dir": str(tmp_path / "runs")},
                        progress_bar=False)
    TIMES["01_standard_training[digits]"] = round(time.time() - start, 1)
    text = json.dumps(json.loads((tmp_path / nb.name).read_text())["cells"])
    assert "digits: 1438 training / 359 test images" in text and "training standard (10 epochs" in text


def figures(path: Path) -> list[bytes]:
    """The PNG figures an executed notebook shows, in order: its image outputs and the pictures
    of its slider strips (HTML outputs, `widgets.slider_html`)."""
    import base64
    import re
    found = []
    for out in (o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])):
        data = out.get("data", {})
        if "image/png" in data:
            found.append(base64.b64decode(data["image/png"]))
        html = "".join(data.get("text/html", ""))
        found += [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]
    return found


@pytest.mark.notebook
def test_later_notebook_first_then_again(tmp_path):
    """07 run first in an empty checkpoint folder trains the models it needs (as 03/05 would);
    run a second time it loads them, and shows exactly the same figures (digits, one training
    epoch: what is tested is finding the checkpoints, not the models)."""
    import papermill as pm
    nb = ROOT / "notebooks" / "07_feature_space.ipynb"
    outs = [tmp_path / "first.ipynb", tmp_path / "second.ipynb"]
    for out in outs:
        pm.execute_notebook(str(nb), str(out), cwd=str(nb.parent), kernel_name="python3", progress_bar=False,
                            parameters={"preset": "quick", "dataset": "digits", "epochs": 1,
                                        "run_dir": str(tmp_path / "runs")})
    first, second = figures(outs[0]), figures(outs[1])
    assert len(first) >= 3 and first == second
    assert list((tmp_path / "runs").rglob("model.pt")), "the first run saved no checkpoint"
