"""The lessons as a static web site (MkDocs with the Material theme and mkdocs-jupyter), to read
without running anything, built from the student edition: safe to publish to students.

    python -m clead_edu site --out site                  # all eight notebooks, quick preset
    python -m clead_edu site --out site --only 01,04     # some of them

Each notebook is first split into its two editions (`editions.build_editions`, otter assign, into
DIR-build/editions, beside DIR: nothing of it is published). The teacher edition is executed with papermill (working folder notebooks/,
checkpoints in DIR-build/runs/notebooks, so the course's own runs/ is left alone), and its outputs
are laid onto the student edition (`editions.seal`): every cell shows what it produces, and each
exercise shows a note where the worked code was. The sealed notebooks are prepared for reading
(the live widgets need a kernel, so their outputs are replaced by a note; every explorer is
followed by a strip of pictures with a slider in plain HTML, computed when the notebook ran,
which works in the page; no build path is left in an output) and staged in
DIR-build/docs with the course page (docs/course.md) as home page, docs/ and a copy of MathJax; MkDocs then builds DIR
from them with mkdocs.yml (navigation, search, formulas), loading nothing from the network.
Building it needs otter-grader besides the notebooks' packages (`pip install -e '.[notebooks,editions]'`).
"""
from __future__ import annotations

import re
import shutil
import sysconfig
import time
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
CONFIG = REPO / "mkdocs.yml"
HOME = "course.md"           # docs/course.md, the site's home page (index.md); the README is the repository's
DOCS_IN_NAV = {"Instructor guide": "instructor_guide.md", "Your own defense": "your_own_defense.md", "Results": "results.md",
               "Design notes": "design.md"}
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="clead-widget-note"><em>Interactive explorer: open the notebook in Jupyter '
               '(or Colab) to use it. The slider after it works in this page.</em></p>')
# MathJax's local configuration (config/local/clead_edu.js, named in mkdocs.yml's MathJax address).
# jupyter-server-mathjax ships the STIX-Web fonts only, so: HTML-CSS must not look for its TeX
# fonts; its placeholder font, url('about:blank'), is refused by Chromium with a console error
# (local() instead); and the hidden MathML kept for screen readers must not ask for the TeX fonts
# that the native-MathML styles name (a 404 for MathJax_AMS on \mathbb otherwise).
MATHJAX_LOCAL = """MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null,
  webFont: "STIX-Web", imageFont: null, styles: {
    "@font-face": {"font-family": "MathJax_Blank", src: "local('MathJax_Blank')"},
    ".MJX_Assistive_MathML [mathvariant]": {"font-family": "inherit !important"}}}});
MathJax.Ajax.loadComplete("[MathJax]/config/local/clead_edu.js");
"""
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def add_parser(sub) -> None:
    """The `site` subcommand of `python -m clead_edu`."""
    p = sub.add_parser("site", help="execute the notebooks (quick preset) and build the course web site")
    p.add_argument("--out", required=True, help="output folder; DIR/index.html is the home page")
    p.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,04 (default: all)")
    p.add_argument("--preset", default="quick", help="the notebooks' preset parameter")
    p.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of the lesson notebooks")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    build_site(args.out, args.only, args.preset, args.notebooks)
    return 0


def choose(folder: Path, only: str | None) -> list[Path]:
    """The lesson notebooks in `folder` ('NN_name.ipynb'), restricted to the numbers in `only`."""
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    wanted = [w.strip().zfill(2) for w in only.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in {p.name[:2] for p in found}]
    if unknown:
        raise ValueError(f"--only {only}: no notebook numbered {', '.join(unknown)} in {folder} "
                         f"(there are {', '.join(p.name[:2] for p in found)})")
    return [p for p in found if p.name[:2] in wanted]


def title(nb) -> str:
    """The text of the notebook's first '# ' heading (else its file name is used by the caller)."""
    for cell in nb.cells:
        m = re.search(r"^# (.+)$", cell.source, re.M) if cell.cell_type == "markdown" else None
        if m:
            return m.group(1).strip()
    return ""


def for_reading(nb):
    """The executed notebook as a reader should see it: no Colab set-up cell or papermill's
    injected parameters (a temporary path), the Colab badge as a text link (no remote image),
    explorer widgets replaced by a note, progress-bar widgets left out. Changes nb in place and returns it."""
    import nbformat
    nb.cells = [c for c in nb.cells if c.get("id") != "colab-setup"
                and "injected-parameters" not in c.metadata.get("tags", [])]
    nb.cells = [c for c in nb.cells if c.cell_type != "raw"]    # no raw cells: the editions' markup (otter)
    for cell in nb.cells:
        if cell.get("id") == "colab-badge":
            cell.source = re.sub(r"\[!\[Open In Colab\]\([^)]*\)\]", "[Open in Colab]", cell.source)
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET not in data:
                outputs.append(out)
            elif re.match(r"[HV]Box\(", data.get("text/plain", "")):      # an explorer: a note instead
                outputs.append(nbformat.from_dict({**out, "data": {"text/html": WIDGET_NOTE}}))
            # else a progress bar (tqdm): its text shows only the first state, 0%; left out
        if cell.cell_type == "code":
            cell.outputs = outputs
    nb.metadata.pop("widgets", None)
    return nb


def without_paths(nb, replace: dict[str, str]):
    """Every text output (printed lines, text/plain, HTML, tracebacks) with each absolute path in
    `replace` swapped for its short form, e.g. '/tmp/x/site-build/runs/' -> 'runs/'; papermill's
    metadata (input and output paths) dropped. Changes nb in place and returns it."""
    def clean(text):
        for long, short in replace.items():
            text = text.replace(long, short)
        return text
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = clean(out["text"])
            if "traceback" in out:
                out["traceback"] = [clean(t) for t in out["traceback"]]
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/") and isinstance(value, str):
                    out["data"][mime] = clean(value)
    nb.metadata.pop("papermill", None)
    return nb


def execute(src: Path, dest: Path, preset: str, run_dir: Path, cwd: Path) -> float:
    """Run one notebook with papermill in the folder `cwd` (the lessons' own); returns the seconds it took."""
    import papermill as pm
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(src), str(dest), parameters={"preset": preset, "run_dir": str(run_dir)},
                            cwd=str(cwd), progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as err:
        raise ValueError(f"{src.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                         f"the partly executed notebook, with the traceback, is {dest}") from None
    return time.perf_counter() - start


def site_links(text: str, here: str, exists) -> str:
    """Markdown `text` from the repository file `here` (e.g. 'README.md') with its relative links
    pointed at the site's copies: docs/X -> X, notebooks/NN_x.ipynb -> lessons/NN_x.ipynb, made
    relative to where `here` lands in the site. A link whose target is not in the site (a module,
    LICENSE, a folder) keeps its text only; README.md is the home page, index.md. `exists(path)` says whether a site path is a file."""
    def site_path(repo_path: str) -> str | None:
        if repo_path == "README.md":
            return "index.md"
        for old, new in (("docs/", ""), ("notebooks/", "lessons/")):
            if repo_path.startswith(old):
                return new + repo_path[len(old):]
        return None

    def fix(m):
        bang, words, target = m.groups()
        if re.match(r"[a-z]+:|#|/", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        repo_path = _normalise(PurePosixPath(here).parent / path)
        new = site_path(repo_path) if repo_path else None
        if new is None or not exists(new):
            return words
        rel = _relative(new, site_path(here) or "index.md")
        return f"{bang}[{words}]({rel}{'#' + anchor if anchor else ''})"
    return LINK.sub(fix, text)


def _normalise(path: PurePosixPath) -> str | None:
    """'docs/../README.md' -> 'README.md'; None for a path that leaves the repository."""
    parts = []
    for part in path.parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _relative(target: str, page: str) -> str:
    """The link from site page `page` to site file `target` (both relative to the site root)."""
    up = len(PurePosixPath(page).parts) - 1
    return "../" * up + target


def lessons_page(entries: list[tuple[str, str, float]], preset: str) -> str:
    """lessons/index.md: one line per lesson (stem, title, seconds it took to execute)."""
    rows = "\n".join(f"| [{name}]({stem}.ipynb) | {sec:.0f} s |" for stem, name, sec in entries)
    return f"""# Lessons

Each page is a lesson notebook executed in the `{preset}` preset, with its figures, as the
student edition shows it: where an exercise's worked code would be, a note says so. The
interactive explorers need a running notebook: their place shows a note, and the slider after
each one, computed when the lesson ran, works in the page. To change and run the lessons, open `notebooks/` in Jupyter or
Colab (see the home page).

| lesson | executed in |
|---|---|
{rows}

Built with `python -m clead_edu site --preset {preset}` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.
"""


def stage(docs: Path, pages: list, preset: str, replace: dict[str, str]) -> list:
    """Write the site's sources into `docs`: docs/ as it is, index.md (docs/course.md, the home page),
    the lessons ready to read in lessons/ with lessons/index.md, MathJax in assets/mathjax. Returns the nav."""
    import nbformat
    if docs.exists():
        shutil.rmtree(docs)
    shutil.copytree(REPO / "docs", docs)
    copy_mathjax(docs / "assets" / "mathjax")
    (docs / "lessons").mkdir()
    for src, nb, _ in pages:
        nbformat.write(without_paths(for_reading(nb), replace), docs / "lessons" / src.name)
    (docs / "lessons" / "index.md").write_text(
        lessons_page([(src.stem, title(nb) or src.stem, s) for src, nb, s in pages], preset), encoding="utf-8")
    exists = lambda p: p == "index.md" or (docs / p).is_file()  # noqa: E731
    for md in [md for md in docs.rglob("*.md") if md.parent != docs / "lessons"]:
        here = "docs/" + md.relative_to(docs).as_posix()
        md.write_text(site_links(md.read_text(encoding="utf-8"), here, exists), encoding="utf-8")
    (docs / HOME).rename(docs / "index.md")          # its links were made for docs/, the same level
    lessons = [{(title(nb) or src.stem).split(":")[0]: f"lessons/{src.name}"} for src, nb, _ in pages]
    return ([{"Home": "index.md"}, {"Lessons": ["lessons/index.md", *lessons]}]
            + [{name: path} for name, path in DOCS_IN_NAV.items() if exists(path)])


def copy_mathjax(dest: Path) -> None:
    """MathJax 2.7 from the jupyter-server-mathjax package, with the local configuration."""
    from jupyter_server_mathjax.app import STATIC_ASSETS_PATH
    shutil.copytree(STATIC_ASSETS_PATH, dest)
    (dest / "config" / "local").mkdir(exist_ok=True)
    (dest / "config" / "local" / "clead_edu.js").write_text(MATHJAX_LOCAL, encoding="utf-8")


def mkdocs_build(docs: Path, site: Path, nav: list) -> None:
    """MkDocs with the repository's mkdocs.yml, the staged sources `docs` and the given nav."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    config = load_config(str(CONFIG), docs_dir=str(docs), site_dir=str(site), nav=nav)
    build(config)


def build_folder(out: Path) -> Path:
    """Where the site of `out` is built: the folder beside it, 'DIR-build' (the editions, the executed
    teacher notebooks, the checkpoints, the staged pages). Never inside `out`, which is published."""
    return out.with_name(out.name + "-build")


def publish(built: Path, out: Path) -> None:
    """Replace the previous site in `out` by the freshly built one."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    for new in built.iterdir():
        shutil.move(str(new), str(out / new.name))
    built.rmdir()


def check_out(out: Path) -> None:
    """The site replaces what `out` holds: refuse a folder that is not empty and not a site."""
    if out.is_dir() and any(out.iterdir()) and not build_folder(out).is_dir():
        raise ValueError(f"--out {out} is a folder with other files in it; the site replaces the "
                         "contents of its folder: give a new or empty folder, or one this command built")


def build_site(out, only: str | None = None, preset: str = "quick", notebooks=NOTEBOOKS) -> Path:
    """Build both editions of the chosen notebooks, execute the teacher editions in order (they
    share checkpoints, as in a course), seal each student edition with its outputs
    (`editions.seal`), then build the site into `out` with MkDocs. Returns out/index.html."""
    import nbformat

    from . import editions
    out = Path(out).resolve()             # papermill runs in notebooks/: relative paths would move
    check_out(out)
    folder = Path(notebooks).resolve()
    lessons = choose(folder, only)
    run = build_folder(out)
    run.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(run / "editions", ignore_errors=True)
    built = editions.build_editions(run / "editions", ",".join(p.name[:2] for p in lessons), folder)
    pages = []
    for src, teacher, student in zip(lessons, built["teacher"], built["student"]):
        print(f"[clead_edu] executing {src.name} ({preset} preset, teacher edition) ...", flush=True)
        seconds = execute(teacher, run / src.name, preset, run / "runs" / "notebooks", folder)
        sealed = editions.seal(nbformat.read(student, as_version=4), nbformat.read(run / src.name, as_version=4))
        pages.append((src, sealed, seconds))
        print(f"[clead_edu] {src.name}: {seconds:.0f} s", flush=True)
    print("[clead_edu] building the site with MkDocs ...", flush=True)
    replace = {f"{run}/": "", f"{folder}/": "", f"{REPO}/": "",
               sysconfig.get_paths()["purelib"] + "/": ""}       # warnings name their file
    nav = stage(run / "docs", pages, preset, replace)
    mkdocs_build(run / "docs", run / "site", nav)
    publish(run / "site", out)
    print(f"[clead_edu] written: {out / 'index.html'}")
    return out / "index.html"
