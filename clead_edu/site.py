"""The lessons as a static web site, to read without running anything.

    python -m clead_edu site --out site                  # all seven notebooks, quick preset
    python -m clead_edu site --out site --only 01,04     # some of them

Each notebook is executed with papermill (working folder notebooks/, checkpoints in
DIR/_run/runs/notebooks, so the course's own runs/ is left alone), then converted to one
HTML page with nbconvert (lab template, figures embedded as data: URIs). The live widgets
need a kernel, so their outputs are replaced by a note; every explorer is followed by its
static fallback figure. DIR/index.html links the lessons with their titles. The pages load
nothing from the network except MathJax, and only on pages that contain formulas.
"""
from __future__ import annotations

import html
import re
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="clead-widget-note"><em>Interactive explorer: open the notebook in Jupyter '
               '(or Colab) to use it. The static figure after it shows the same.</em></p>')
# nbconvert's lab template without require.js, mermaid and the widget manager (all from CDNs,
# none needed here), MathJax only where a page has formulas, an empty icon (no /favicon.ico
# request), and a line of navigation on top.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- if resources.clead_math -%}{{ super() }}{%- endif -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}<link rel="icon" href="data:,">{%- endblock html_head_css -%}
{%- block body_header -%}{{ super() }}
<nav class="clead-nav" style="padding: 8px 16px; font-family: sans-serif">{{ resources.clead_nav }}</nav>
{%- endblock body_header -%}
"""


def add_parser(sub) -> None:
    """The `site` subcommand of `python -m clead_edu`."""
    p = sub.add_parser("site", help="execute the notebooks (quick preset) and build a static HTML site")
    p.add_argument("--out", required=True, help="output folder; DIR/index.html links the lessons")
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
                outputs.append({**out, "data": {"text/html": WIDGET_NOTE}})
            # else a progress bar (tqdm): its text shows only the first state, 0%; left out
        if cell.cell_type == "code":
            cell.outputs = outputs
    nb.metadata.pop("widgets", None)
    return nb


def execute(src: Path, dest: Path, preset: str, run_dir: Path) -> float:
    """Run one notebook with papermill from its own folder; returns the seconds it took."""
    import papermill as pm
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(src), str(dest), parameters={"preset": preset, "run_dir": str(run_dir)},
                            cwd=str(src.parent), progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as err:
        raise ValueError(f"{src.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                         f"the partly executed notebook, with the traceback, is {dest}") from None
    return time.perf_counter() - start


def to_html(nb, nav: str) -> str:
    """One page: nbconvert's lab template, images embedded, the navigation line on top."""
    import jinja2
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_input_prompt=True,
                            extra_loaders=[jinja2.DictLoader({"clead_site.html.j2": TEMPLATE})],
                            template_file="clead_site.html.j2")
    math = any(c.cell_type == "markdown" and re.search(r"\$[^$\s][^$]*\$", c.source) for c in nb.cells)
    body, _ = exporter.from_notebook_node(nb, resources={"clead_nav": nav, "clead_math": math,
                                                         "metadata": {"name": title(nb)}})
    return body


def build_site(out, only: str | None = None, preset: str = "quick", notebooks=NOTEBOOKS) -> Path:
    """Execute the chosen notebooks in order (they share checkpoints, as in a course) and write
    DIR/<name>.html and DIR/index.html. Returns the path of index.html."""
    import nbformat
    out = Path(out).resolve()             # papermill runs in notebooks/: relative paths would move
    lessons = choose(Path(notebooks).resolve(), only)
    run = out / "_run"
    run.mkdir(parents=True, exist_ok=True)
    pages = []
    for src in lessons:
        print(f"[clead_edu] executing {src.name} ({preset} preset) ...", flush=True)
        seconds = execute(src, run / src.name, preset, run / "runs" / "notebooks")
        pages.append((src, nbformat.read(run / src.name, as_version=4), seconds))
        print(f"[clead_edu] {src.name}: {seconds:.0f} s", flush=True)
    for i, (src, nb, _) in enumerate(pages):
        links = ['<a href="index.html">all lessons</a>']
        if i > 0:
            links.insert(0, f'<a href="{pages[i - 1][0].stem}.html">previous</a>')
        if i + 1 < len(pages):
            links.append(f'<a href="{pages[i + 1][0].stem}.html">next</a>')
        page = to_html(for_reading(nb), " · ".join(links))
        (out / f"{src.stem}.html").write_text(page, encoding="utf-8")
    index = out / "index.html"
    index.write_text(index_page([(src.stem, title(nb) or src.stem, s) for src, nb, s in pages], preset),
                     encoding="utf-8")
    print(f"[clead_edu] written: {index}")
    return index


def index_page(entries: list[tuple[str, str, float]], preset: str) -> str:
    """DIR/index.html: one link per lesson (stem, title, seconds it took to execute)."""
    items = "\n".join(f'  <li><a href="{stem}.html">{html.escape(name)}</a> '
                      f'<span class="time">(executed in {sec:.0f} s)</span></li>'
                      for stem, name, sec in entries)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>clead_edu: the lessons</title><link rel="icon" href="data:,">
<style>body {{ font-family: sans-serif; max-width: 50em; margin: 2em auto; line-height: 1.5 }}
.time {{ color: #555; font-size: 90% }}</style></head>
<body>
<h1>clead_edu: adversarial robustness, the lessons</h1>
<p>Each page is a lesson notebook executed in the <code>{html.escape(preset)}</code> preset, with its
figures. To change and run them, open <code>notebooks/</code> in Jupyter (see the README).</p>
<ol>
{items}
</ol>
<p>Built with <code>python -m clead_edu site --preset {html.escape(preset)}</code> on
{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.</p>
</body>
</html>
"""
