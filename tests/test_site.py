"""`python -m clead_edu site`: the executed lessons as an MkDocs site, built from the student edition
(sealed: outputs kept, worked code left out), checked in headless Chromium.

A small made-up lesson with one exercise is built in seconds to check the sealing. The real site
is built once for two quick notebooks: 01 (the fastest) and 07 (formulas and an
explorer with its slider strip). Then every page is opened in Debian's Chromium with the
network blocked (only 127.0.0.1 answers): no console error, every image drawn, the navigation
there, the formulas typeset by the site's own MathJax, the search finding a lesson.
Screenshots: site_home.png, site_07.png in the artifacts folder (conftest.artifacts).
"""
import functools
import http.server
import json
import re
import sysconfig
import threading
from pathlib import Path

import nbformat
import pytest
from conftest import REPO  # noqa: F401  (conftest sets one thread)

from sealed import answer_lines, leaks, page_text, plain, solution_lines

from clead_edu.course import editions, site
from clead_edu.__main__ import main

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LESSONS = ("01_standard_training", "07_feature_space")


def test_choose_picks_numbers_and_names_the_missing_ones():
    assert [p.name[:2] for p in site.choose(site.NOTEBOOKS, "4,01")] == ["01", "04"]
    assert len(site.choose(site.NOTEBOOKS, None)) == 8
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


def test_without_paths_shortens_every_text_output():
    """Printed lines, rich text and tracebacks lose the build folder; papermill's metadata goes."""
    run = "/tmp/pytest-7/site0/_run/"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=f"saved {run}runs/notebooks/a/model.pt\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"PosixPath('{run}runs')",
                                                       "image/png": "iVBORw0KGgo="}),
        nbformat.v4.new_output("error", ename="E", evalue="", traceback=[f"File {run}x.py"])])])
    nb.metadata["papermill"] = {"input_path": "/work/notebooks/01.ipynb"}
    outs = site.without_paths(nb, {run: ""}).cells[0].outputs
    assert outs[0]["text"] == "saved runs/notebooks/a/model.pt\n"
    assert outs[1]["data"] == {"text/plain": "PosixPath('runs')", "image/png": "iVBORw0KGgo="}
    assert outs[2]["traceback"] == ["File x.py"] and "papermill" not in nb.metadata


def test_site_links_follow_the_files_into_the_site():
    """docs/X -> X, notebooks/N.ipynb -> lessons/N.ipynb, relative to where the page lands;
    links to what the site does not hold keep their text; web links and anchors stay."""
    present = {"index.md", "results.md", "img/a.png", "lessons/01_x.ipynb", "instructor_guide.md"}
    readme = ("See [results](docs/results.md#seeds), ![shot](docs/img/a.png), [01](notebooks/01_x.ipynb), "
              "[02](notebooks/02_y.ipynb), [`solutions/`](solutions/README.md), [paper](https://arxiv.org/x), "
              "[top](#install).")
    assert site.site_links(readme, "README.md", present.__contains__) == (
        "See [results](results.md#seeds), ![shot](img/a.png), [01](lessons/01_x.ipynb), "
        "02, `solutions/`, [paper](https://arxiv.org/x), [top](#install).")
    guide = "[answers](../solutions/README.md), [results](results.md), [figures](results/), [home](../README.md)"
    assert site.site_links(guide, "docs/instructor_guide.md", present.__contains__) == \
        "answers, [results](results.md), figures, [home](index.md)"
    assert site.site_links("[r](../results.md)", "docs/results/x.md", present.__contains__) == "[r](../results.md)"


def lesson_with_an_exercise(folder: Path) -> Path:
    """A made-up lesson in the editions' format: a parameters cell, one exercise whose worked code
    computes `doubled_secret`, the solution cell printing a line and a check cell printing the result."""
    new, raw = nbformat.v4.new_code_cell, nbformat.v4.new_raw_cell
    config = nbformat.read(site.NOTEBOOKS / "01_standard_training.ipynb", as_version=4).cells[-1]
    assert config.source.startswith("# ASSIGNMENT CONFIG")
    cells = [nbformat.v4.new_markdown_cell("# 01 · A made-up lesson"),
             new('preset = "quick"\nrun_dir = "x"', metadata={"tags": ["parameters"]}),
             raw("# BEGIN QUESTION\nname: double"), nbformat.v4.new_markdown_cell("**Exercise.** Double it."),
             raw("# BEGIN SOLUTION"),
             new('def my_double(v):\n    """Twice v."""\n    # BEGIN SOLUTION\n    doubled_secret = v + v\n'
                 '    return doubled_secret\n    # END SOLUTION\n\nprint("my_double is ready")'),
             raw("# END SOLUTION"), new('print("check:", my_double(21))'), raw("# END QUESTION"),
             raw(config.source)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir()
    nbformat.write(nb, folder / "01_made_up.ipynb")
    return folder / "01_made_up.ipynb"


def article(page: Path) -> str:
    """The HTML of a page's main text (Material's <article>), navigation aside."""
    text = page.read_text(encoding="utf-8")
    return text[text.index("<article"):text.index("</article>")]


def list_items(markdown: str) -> int:
    """How many list items a Markdown text has (lines starting '- ', '* ' or 'N. ', code fences aside)."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return len(re.findall(r"^\s*(?:[-*]|\d+\.) ", prose, flags=re.M))


def broken_links(site_dir: Path, page: Path) -> list[str]:
    """The relative links (href, src) of `page` that do not lead to a file of the site."""
    targets = re.findall(r'(?:href|src)="([^"#?]+)[^"]*"', page.read_text(encoding="utf-8"))
    local = [t for t in targets if not re.match(r"[a-z]+:|/|data:", t)]
    return [t for t in local if not (page.parent / t).resolve().is_file()
            and not ((page.parent / t).resolve() / "index.html").is_file()]


def check_home(site_dir: Path) -> None:
    """The home page is docs/course.md rendered whole: every list item an <li> (the nested steps
    too), no list marker left as text in a paragraph, every relative link leading to a file."""
    home = article(site_dir / "index.html")
    expected = list_items((REPO / "docs" / "course.md").read_text())
    assert home.count("<li") == expected and expected >= 15, (home.count("<li"), expected)
    paragraphs = re.findall(r"<p>(.*?)</p>", home, flags=re.S)
    assert not [p for p in paragraphs if re.search(r"(^|\n)\s*(- |\* |\d\. )|- <em>|- \*", p)], paragraphs
    steps = re.search(r"<ol>(.*?)</ol>", home, flags=re.S).group(1)
    assert steps.count("<ul>") == 1 and "Colab:</em>" in steps.split("<ul>")[1]     # the nested items
    assert "The lessons" in home and "How you are graded" in home
    assert broken_links(site_dir, site_dir / "index.html") == []


def test_the_site_shows_each_exercise_sealed_with_its_outputs(tmp_path):
    """Built from the student edition: the solution cell keeps its signature and its output, a note
    stands where the worked code was, the check after it shows the teacher edition's result; the worked
    code is nowhere in the published folder (pages, search index), and the build folder is beside it."""
    lesson = lesson_with_an_exercise(tmp_path / "nbs")
    out = tmp_path / "site"
    assert main(["site", "--out", str(out), "--notebooks", str(lesson.parent)]) == 0
    text = page_text(out / "lessons" / "01_made_up.html")
    assert plain("def my_double(v):") in text and plain(editions.SEALED_NOTE) in text
    assert plain("my_double is ready") in text and "check: 42" in text
    assert solution_lines([lesson]) == [plain("doubled_secret = v + v"), plain("return doubled_secret")]
    published = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in published if "doubled_secret" in p.read_text(errors="replace")]
    assert "doubled_secret" in (site.build_folder(out) / "editions/teacher/01_made_up.ipynb").read_text()
    check_home(out)


def test_seal_lays_the_teacher_outputs_on_the_student_cells():
    """Outputs go by cell id; the note sits above each `...` at its indent; a student cell the
    teacher edition lacks is an error."""
    student = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def f(x):\n    ...", id="ex"),
                                              nbformat.v4.new_code_cell("print(f(1))", id="check")])
    teacher = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f(x):\n    return x + 1", id="ex"),
        nbformat.v4.new_code_cell("print(f(1))", id="check", execution_count=2,
                                  outputs=[nbformat.v4.new_output("stream", name="stdout", text="2\n")])])
    sealed = editions.seal(student, teacher)
    assert sealed.cells[0].source == f"def f(x):\n    {editions.SEALED_NOTE}\n    ..."
    assert sealed.cells[1].outputs[0]["text"] == "2\n" and sealed.cells[1].execution_count == 2
    assert "x + 1" not in json.dumps(sealed)
    teacher.cells[1].id = "other"
    with pytest.raises(ValueError, match="'check' of the student edition is not in the executed teacher"):
        editions.seal(student, teacher)


def test_an_occupied_out_folder_is_refused_before_anything_runs(tmp_path, monkeypatch):
    """The site replaces its folder's contents, so a folder with other files is refused (before
    any notebook runs); an empty folder or one an earlier build made (DIR-build beside it) is fine."""
    monkeypatch.setattr(site, "execute", lambda *a: pytest.fail("executed before the check"))
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="other files in it"):
        site.build_site(tmp_path, only="01")
    assert (tmp_path / "mine.txt").read_text() == "keep me" and not site.build_folder(tmp_path).exists()
    site.check_out(tmp_path / "new")
    site.build_folder(tmp_path).mkdir()
    site.check_out(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    assert main(["site", "--out", str(out), "--only", ",".join(n[:2] for n in LESSONS)]) == 0
    return out


def pages(built: Path) -> list[Path]:
    """Every HTML page of the site (MathJax's own files aside)."""
    return sorted(p for p in built.rglob("*.html") if p.relative_to(built).parts[0] != "assets")


def test_site_files(built):
    """Home, lessons, docs pages; navigation and the search index; each lesson's figures (the
    explorer's note followed by its static figure); MathJax in the site; no build path anywhere."""
    names = {p.relative_to(built).as_posix() for p in pages(built)}
    assert {"index.html", "lessons/index.html", "instructor_guide.html", "results.html"} <= names
    assert {f"lessons/{n}.html" for n in LESSONS} <= names and "lessons/02_attacks.html" not in names
    assert (built / "assets/mathjax/MathJax.js").is_file()
    assert (built / "assets/mathjax/config/TeX-AMS-MML_HTMLorMML-full.js").is_file()
    assert (built / "assets/mathjax/config/local/clead_edu.js").is_file()
    index = json.loads((built / "search/search_index.json").read_text())
    titles = {d["title"] for d in index["docs"]}
    assert any(t.startswith("01 · Standard training") for t in titles) and any(t.startswith("07 ·") for t in titles)
    build_paths = [str(built), str(REPO), sysconfig.get_paths()["purelib"]]    # built-build too
    assert not (built / "_run").exists() and site.build_folder(built).is_dir()    # nothing of the build published
    for page in pages(built):
        text = page.read_text()
        assert re.search(r'href="(\.\./|/)?(lessons/)?07_feature_space\.html"', text), page   # nav to the lessons
        assert not [p for p in build_paths if p in text], page
        assert not re.search(r'(src="|<link[^>]+href=")(https?:)?//', text), page     # nothing loaded from afar
    for name in LESSONS:
        text = (built / f"lessons/{name}.html").read_text()
        assert text.count('src="data:image/png;base64,') >= 3 and "Traceback" not in text and "/tmp/" not in text
        assert 'src="../assets/mathjax/MathJax.js?config=' in text
    sources = [REPO / "notebooks" / f"{n}.ipynb" for n in LESSONS]
    secret = solution_lines(sources) + answer_lines(sorted((REPO / "notebooks").glob("0*.ipynb")))
    for page in pages(built):
        assert leaks(page_text(page), secret) == [], page                  # no worked code, no answer
    assert leaks((built / "search/search_index.json").read_text(), secret) == []
    check_home(built)
    assert {page.name: broken_links(built, page) for page in pages(built) if broken_links(built, page)} == {}
    lesson_01 = page_text(built / "lessons/01_standard_training.html")
    assert plain(editions.SEALED_NOTE) in lesson_01 and "exercise accuracy: right!" in lesson_01   # sealed, output kept
    before, note, after = (built / "lessons/07_feature_space.html").read_text().partition("Interactive explorer")
    assert note and "Interactive explorer" not in after and "jupyter-widgets" not in after
    strip = after.find('<div class="clead-strip">', after.find("Without a kernel"))
    assert strip > 0 and after.find('src="data:image/png;base64,', strip) > 0


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


TYPESET = """() => new Promise(done => MathJax.Hub.Queue(() => done({
    formulas: document.querySelectorAll('script[type^="math/tex"]').length,
    drawn: document.querySelectorAll('.MathJax, .MathJax_Display').length,
    errors: document.querySelectorAll('.MathJax_Error, [data-mjx-error]').length})))"""


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")
def test_every_page_in_chromium_offline(built, served, artifacts):
    """Every page: HTTP 200, the navigation, every image drawn (naturalWidth > 0), no console or
    page error, and every request off 127.0.0.1 blocked and recorded (there must be none).
    07: its formulas typeset by MathJax without error, its slider strip moved with the keyboard. Search: typing finds lesson 07."""
    from playwright.sync_api import sync_playwright
    errors, remote = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith((served, "data:"))
                   else (remote.append(route.request.url), route.abort()))
        page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        try:
            for path in pages(built):
                rel = path.relative_to(built).as_posix()
                assert page.goto(f"{served}/{rel}", wait_until="load").ok or rel == "404.html", rel
                assert page.locator("nav.md-nav--primary a.md-nav__link").count() >= 4, rel
                sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : -1)")
                assert all(w > 0 for w in sizes), (rel, sizes)
                if rel.startswith("lessons/0"):
                    math = page.evaluate(TYPESET)
                    assert math["errors"] == 0 and math["drawn"] >= math["formulas"], (rel, math)
                    if rel == "lessons/07_feature_space.html":
                        assert math["formulas"] >= 2 and "\\mathrm" not in page.inner_text("article"), math
                        page.screenshot(path=str(artifacts / "site_07.png"))
                        move_the_strip(page)
                if rel == "index.html":
                    page.screenshot(path=str(artifacts / "site_home.png"))
            page.goto(f"{served}/index.html")
            page.keyboard.press("/")                            # Material's search shortcut
            page.keyboard.type("UMAP")
            page.wait_for_selector(".md-search-result__item a[href*='07_feature_space']", timeout=15000)
        finally:
            browser.close()
    assert errors == [], errors
    assert remote == [], remote


def move_the_strip(page) -> None:
    """The first slider strip on the page: its start picture shows alone; the End key shows the last."""
    strip = page.locator(".clead-strip").first
    visible = "s => [...s.querySelectorAll('img.clead-frame')].filter(i => i.offsetParent !== null).map(i => i.alt)"
    before = strip.evaluate(visible)
    strip.locator("input[type=range]").focus()
    page.keyboard.press("End")
    after = strip.evaluate(visible)
    assert len(before) == len(after) == 1 and before != after, (before, after)
    assert strip.locator("output").inner_text() == after[0]


def test_relative_out_is_resolved_before_papermill_changes_folder(tmp_path, monkeypatch):
    """papermill runs each notebook in notebooks/, so the run folder it is given must be absolute
    (else `--out site` would put checkpoints under notebooks/site/). Execution faked here."""
    import shutil
    calls = []

    def fake_execute(src, dest, preset, run_dir, cwd):
        calls.append((run_dir, cwd))
        shutil.copy(src, dest)
        return 0.0
    monkeypatch.setattr(site, "execute", fake_execute)
    monkeypatch.chdir(tmp_path)
    index = site.build_site("course_site", only="01")
    assert calls == [(tmp_path / "course_site-build" / "runs" / "notebooks", site.NOTEBOOKS)]
    assert index == tmp_path / "course_site" / "index.html" and index.exists()
    assert (tmp_path / "course_site" / "lessons" / "01_standard_training.html").exists()


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
