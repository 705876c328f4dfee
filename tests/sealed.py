"""What must never reach students, and a search for it: the lines of the worked solutions (the
`# BEGIN SOLUTION` ... `# END SOLUTION` bodies of the source notebooks) and the answers in
solutions/*.md. Used by tests/test_site.py (the built site) and tests/test_editions.py (the
student edition and the student tree).

A line counts when it says something of its own: a code line of at least 12 characters, an
answer line of at least 30, in both cases not also found in the public material (the lessons'
other cells, docs/, the README, and the package's own code, which students get and call:
`ce.fgsm` is the reference an FGSM exercise is graded against), since that gives nothing away.
"""
import html
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAG = re.compile(r"<[^>]+>")
LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def plain(text: str) -> str:
    """Text without Markdown emphasis, code marks and link targets, whitespace collapsed."""
    text = LINK.sub(r"\1", text)
    return " ".join(re.sub(r"[*`_]", "", text).split())


def page_text(path: Path) -> str:
    """An HTML page as plain text (tags dropped, entities decoded), for a substring search."""
    return plain(html.unescape(TAG.sub(" ", path.read_text(encoding="utf-8"))))


def sources(path: Path) -> list[dict]:
    return [{**c, "source": "".join(c["source"])} for c in json.loads(path.read_text())["cells"]]


def split_solutions(path: Path) -> tuple[list[str], str]:
    """(lines of the solution bodies, everything else the notebook's cells hold) of a source notebook."""
    body, rest = [], []
    for cell in sources(path):
        code = cell["source"]
        while "# BEGIN SOLUTION" in code and cell["cell_type"] == "code":
            before, _, after = code.partition("# BEGIN SOLUTION")
            inside, _, code = after.partition("# END SOLUTION")
            rest.append(before)
            body += inside.splitlines()
        rest.append(code)
    return body, "\n".join(rest)


def public_text(notebooks: list[Path]) -> str:
    """What the public material says anyway: the notebooks outside their solutions, docs/, README,
    the package's, tools' and benchmarks' code."""
    parts = [split_solutions(p)[1] for p in notebooks]
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    files += [p for folder in ("clead_edu", "tools", "benchmarks") for p in sorted((REPO / folder).rglob("*.py"))]
    parts += [p.read_text(encoding="utf-8") for p in files]
    return plain("\n".join(parts))


def solution_lines(notebooks: list[Path]) -> list[str]:
    """The non-trivial lines of every solution body (comments dropped), e.g.
    'return (pred == y).float().mean().item()'."""
    public = public_text(notebooks)
    found = []
    for path in notebooks:
        for line in split_solutions(path)[0]:
            code = plain(re.sub(r"(^|\s)#.*$", "", line))
            if len(code) >= 12 and code not in public and code not in found:
                found.append(code)
    return found


def answer_lines(notebooks: list[Path], folder: Path = REPO / "solutions") -> list[str]:
    """The non-trivial lines of the worked answers in solutions/*.md (headings and the README aside)."""
    public = public_text(notebooks)
    found = []
    for path in sorted(folder.glob("[0-9][0-9]_*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            text = plain(line.lstrip("#>-| "))
            if len(text) >= 30 and not line.startswith("#") and text not in public and text not in found:
                found.append(text)
    return found


def leaks(text: str, lines: list[str]) -> list[str]:
    """The lines found in `text` (both compared as plain text)."""
    text = plain(text)
    return [line for line in lines if line in text]
