"""Browser test: JupyterLab in headless Chromium runs 02_attacks and its epsilon slider works.

Starts JupyterLab on loopback with fresh config/data/runtime/workspace folders, opens
a copy of notebooks/02_attacks.ipynb (its pretrained photo model), runs all cells, moves the epsilon slider with
the keyboard (eps 0 -> 8/255 on a CIFAR-10 photo) and asserts that the widget rendered
and that the displayed prediction and figure changed. Screenshots go to the artifacts folder (conftest.artifacts): 02_attacks_before.png, _after.png.
Needs Debian's chromium (/usr/bin/chromium) and the Python playwright package;
`.ci/run` installs both.
"""
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                 reason="Debian chromium not installed (apt-get install chromium)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of 02_attacks; yields (base_url, token)."""
    work = tmp_path / "course" / "notebooks"
    work.mkdir(parents=True)
    text = (ROOT / "notebooks" / "02_attacks.ipynb").read_text()
    (work / "02_attacks.ipynb").write_text(text)     # photos, the pretrained model: nothing is trained
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)   # e.g. Agg would replace the notebook's inline figures by text
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                "JUPYTERLAB_WORKSPACES_DIR", "JUPYTERLAB_SETTINGS_DIR"):
        env[var] = str(tmp_path / var.lower())
    _write_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True"]
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
        yield base, token
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _write_settings(folder: Path) -> None:
    """Render every cell (no windowing, so widgets below the fold exist) and skip the news pop-up."""
    settings = {"notebook-extension/tracker": '{"windowingMode": "none"}',
                "apputils-extension/notification": '{"fetchNews": "false"}'}
    for name, text in settings.items():
        ext, plugin = name.split("/")
        path = folder / "@jupyterlab" / ext / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _widget_state(page):
    """(status text, src of the figure) shown by the eps explorer."""
    status = page.locator(".widget-html-content", has_text="prediction:").first.inner_text()
    img = page.locator("img.widget-image").first.get_attribute("src") or ""
    return status, img


def _run_and_slide(page, base, token, shots):
    """Open the notebook, Run All, move the epsilon slider; returns (readout, state before, after)."""
    page.goto(f"{base}/lab/tree/02_attacks.ipynb?token={token}&reset")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    page.wait_for_function("window.jupyterapp !== undefined", timeout=30_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
    for attempt in range(5):   # a Run All sent before the kernel connection is up does nothing
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function(
                r"""() => [...document.querySelectorAll('.jp-InputPrompt')]
                          .some(p => /\[(\*|\d+)\]/.test(p.textContent))""", timeout=15_000)
            break
        except Exception:
            if attempt == 4:
                raise
    slider = page.locator(".widget-slider", has_text="eps (/255)").first
    slider.wait_for(state="attached", timeout=300_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=300_000)
    errors = page.locator(".jp-OutputArea-output", has_text="Traceback").count()
    assert errors == 0, "a cell raised an error"
    slider.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    before = _widget_state(page)
    assert before[0].startswith("prediction:") and before[1].startswith(("blob:", "data:image/png"))
    page.screenshot(path=str(shots / "02_attacks_before.png"))
    handle = slider.locator(".noUi-handle")
    handle.focus()
    for _ in range(8):                        # 8 steps of 1/255: eps 0 -> 8/255
        handle.press("ArrowRight")
        page.wait_for_timeout(150)
    readout = slider.locator(".widget-readout").inner_text()
    page.wait_for_function(
        """(old) => { const img = document.querySelector('img.widget-image');
                      return img && img.getAttribute('src') !== old; }""",
        arg=before[1], timeout=60_000)
    page.wait_for_timeout(1000)
    after = _widget_state(page)
    page.screenshot(path=str(shots / "02_attacks_after.png"))
    return readout, before, after


def test_eps_slider_changes_prediction(lab, artifacts):
    """Run All in JupyterLab, move the epsilon slider on a photo (cifar10-sample, eps in 255ths),
    and see the prediction and figure change; screenshots stay in the artifacts folder."""
    from playwright.sync_api import sync_playwright
    base, token = lab
    shots = artifacts
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            readout, before, after = _run_and_slide(page, base, token, shots)
        except Exception:
            page.screenshot(path=str(shots / "02_attacks_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert float(readout) == 8, f"slider did not move to 8/255 (readout {readout})"
    assert "eps 8/255" in after[0] and "WRONG" in after[0], after[0]
    assert after[1] != before[1], "the figure did not change"
    assert after[0] != before[0], f"the displayed prediction did not change: {after[0]!r}"
