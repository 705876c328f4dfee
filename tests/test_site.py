"""`python -m clead_edu site`: the executed lessons as static HTML, checked in headless Chromium.

The site is built once for the two fastest notebooks (01, 04; about a minute on 2 CPU cores),
served on 127.0.0.1 and opened in Debian's Chromium (see test_browser.py): the index lists
both lessons, every link opens a page with its figures rendered, nothing logs a console
error and nothing is fetched from the network. Screenshots: site_index.png, site_01.png in
the artifacts folder (conftest.artifacts).
"""
import functools
import http.server
import threading
from pathlib import Path

import nbformat
import pytest
from conftest import REPO  # noqa: F401  (conftest sets one thread)

from clead_edu import site
from clead_edu.__main__ import main

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_choose_picks_numbers_and_names_the_missing_ones():
    assert [p.name[:2] for p in site.choose(site.NOTEBOOKS, "4,01")] == ["01", "04"]
    assert len(site.choose(site.NOTEBOOKS, None)) == 7
    with pytest.raises(ValueError, match="no notebook numbered 09"):
        site.choose(site.NOTEBOOKS, "01,09")


def test_for_reading_keeps_figures_replaces_explorers_and_drops_set_up_noise():
    """Explorer widget -> a note; tqdm widget -> left out; Colab set-up and injected
    parameters removed; badge without its remote image; the figure output untouched."""
    nb = nbformat.read(site.NOTEBOOKS / "02_attacks.ipynb", as_version=4)
    nb.cells[0].source = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"   # an address set
                          "(https://colab.research.google.com/github/uni/course/blob/main/notebooks/02_attacks.ipynb)")
    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2}}
    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    cell = nbformat.v4.new_code_cell("explorer", outputs=[
        nbformat.v4.new_output("display_data", data={**widget, "text/plain": "VBox(children=(HBox(...),))"}),
        nbformat.v4.new_output("display_data", data={**widget, "text/plain": "clead 1/10:   0%|  | 0/23"}),
        figure])
    injected = nbformat.v4.new_code_cell("run_dir = '/tmp/x'", metadata={"tags": ["injected-parameters"]})
    nb.cells += [cell, injected]
    nb.metadata["widgets"] = {"state": {}}
    out = site.for_reading(nb)
    ids = [c.get("id") for c in out.cells]
    assert "colab-setup" not in ids and "colab-badge" in ids and injected not in out.cells
    assert "colab-badge.svg" not in out.cells[0].source and "[Open in Colab](https://colab" in out.cells[0].source
    assert [list(o["data"]) for o in cell.outputs] == [["text/html"], ["image/png", "text/plain"]]
    assert "Interactive explorer" in cell.outputs[0]["data"]["text/html"] and "widgets" not in out.metadata
    assert site.title(out).startswith("02 · Adversarial attacks")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    assert main(["site", "--out", str(out), "--only", "01,04"]) == 0
    return out


def test_site_files(built):
    """index.html links the two lessons by title; each page embeds its figures."""
    index = (built / "index.html").read_text()
    assert '<a href="01_standard_training.html">01 · Standard training' in index
    assert '<a href="04_contrastive_learning.html">04 · Contrastive learning' in index
    assert "02_attacks.html" not in index
    for name in ("01_standard_training", "04_contrastive_learning"):
        page = (built / f"{name}.html").read_text()
        assert page.count('src="data:image/png;base64,') >= 3 and "Traceback" not in page
        assert "cdnjs" not in page and "require.js" not in page


@pytest.fixture
def served(built):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    handler = functools.partial(Quiet, directory=str(built))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")
def test_site_in_chromium(served, artifacts):
    """Index loads; each link opens its lesson (HTTP 200, its title); every image rendered
    (naturalWidth > 0); no console errors, no page errors, no request off 127.0.0.1."""
    from playwright.sync_api import sync_playwright
    errors, remote = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: remote.append(r.url) if not r.url.startswith((served, "data:")) else None)
        try:
            assert page.goto(f"{served}/index.html").ok
            links = page.locator("ol a")
            assert links.count() == 2
            page.screenshot(path=str(artifacts / "site_index.png"))
            targets = [(links.nth(i).get_attribute("href"), links.nth(i).inner_text()) for i in range(2)]
            for i, (href, text) in enumerate(targets):
                page.goto(f"{served}/index.html")
                with page.expect_navigation():
                    page.locator("ol a").nth(i).click()
                assert page.url.endswith(href) and page.title() == text
                page.wait_for_load_state("load")
                sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : -1)")
                assert len(sizes) >= 3 and all(w > 0 for w in sizes), (href, sizes)
                assert page.locator("nav.clead-nav a", has_text="all lessons").count() == 1
                if href.startswith("01"):
                    page.screenshot(path=str(artifacts / "site_01.png"), full_page=False)
        finally:
            browser.close()
    assert errors == [], errors
    assert remote == [], remote


def test_relative_out_is_resolved_before_papermill_changes_folder(tmp_path, monkeypatch):
    """papermill runs each notebook in notebooks/, so the run folder it is given must be absolute
    (else `--out site` would put checkpoints under notebooks/site/). Execution faked here."""
    import shutil
    calls = []

    def fake_execute(src, dest, preset, run_dir):
        calls.append(run_dir)
        shutil.copy(src, dest)
        return 0.0
    monkeypatch.setattr(site, "execute", fake_execute)
    monkeypatch.chdir(tmp_path)
    index = site.build_site("course_site", only="01")
    assert calls == [tmp_path / "course_site" / "_run" / "runs" / "notebooks"]
    assert index == tmp_path / "course_site" / "index.html" and (tmp_path / "course_site" / "01_standard_training.html").exists()


def test_a_failing_notebook_names_the_cell_and_the_error(tmp_path, capsys):
    """A lesson that raises stops the build with its name, the error and where the
    partly executed copy is; the command exits with status 2."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    params = nbformat.v4.new_code_cell('preset = "quick"\nrun_dir = "x"', metadata={"tags": ["parameters"]})
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell("raise RuntimeError('boom')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nbs / "01_fails.ipynb")
    assert main(["site", "--out", str(tmp_path / "out"), "--notebooks", str(nbs)]) == 2
    err = capsys.readouterr().err
    assert "01_fails.ipynb failed in cell" in err and "RuntimeError: boom" in err
    assert not (tmp_path / "out" / "index.html").exists()
