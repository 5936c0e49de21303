"""Reading the documentation as data: its pages, fenced blocks, inline code and table rows.

The docs tests check what the pages say against the code (variables, profile keys, commands,
check ids) and run the snippets marked runnable; this module is the one place that knows how a
Markdown page is taken apart for that.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
#: Text that pages embed (``docs/_snippets``), not pages of their own.
SNIPPETS_DIR = DOCS / "_snippets"

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<body>[a-z][a-z-]*(?::[^>]*)?)\s*-->\s*$")
_INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
CLI = "mlflow-secrets-auth"


@dataclass(frozen=True)
class Block:
    """A fenced code block, with the HTML comment marker on the line before it, if any."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """Every Markdown page of the site (not the embedded snippets)."""
    return sorted(p for p in DOCS.rglob("*.md") if SNIPPETS_DIR not in p.parents)


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        language = (match["info"].strip().split() or [""])[0].lower()
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(previous)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        found.append(
            Block(page, i + 1, language, "\n".join(body) + "\n", marker["body"] if marker else None)
        )
        i = j + 1
    return found


def prose(page: Path) -> str:
    """The page without its fenced blocks (their lines left empty, so lines keep their numbers)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    inside: str | None = None
    kept: list[str] = []
    for line in lines:
        match = _FENCE.match(line)
        if inside is None and match is not None:
            inside = match["fence"]
            kept.append("")
        elif inside is not None and line.strip().startswith(inside):
            inside = None
            kept.append("")
        else:
            kept.append("" if inside is not None else line)
    return "\n".join(kept)


def inline_code(text: str) -> list[str]:
    """Inline code spans (a span may run over a line break, as in Markdown)."""
    return [" ".join(span.split()) for span in _INLINE.findall(text)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table row (header and separator rows included)."""
    rows = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            rows.append([cell.strip() for cell in stripped[1:-1].split("|")])
    return rows


def tables(text: str) -> list[list[list[str]]]:
    """Each table as its rows: the header first, the separator row dropped."""
    result: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            cells = [cell.strip() for cell in stripped[1:-1].split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        elif current:
            result.append(current)
            current = []
    return result


def section(text: str, heading: str) -> str:
    """The text under a ``## heading`` up to the next heading of that level or above."""
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    assert match is not None, f"no heading {heading!r}"
    level = len(match[1])
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


# --- command lines -----------------------------------------------------------------------------

_BREAKS = frozenset({"|", "||", "&", "&&", ";", "(", ")", "<", ">", ">>", "2>", "&>", "$("})
_PACKAGE_WORDS = frozenset({"pip", "pip3", "pipx", "uv", "install", "show", "uninstall"})


def cli_invocations(text: str) -> list[list[str]]:
    """The argument lists of every ``mlflow-secrets-auth`` command in one line of shell (or one
    inline code span): environment assignments before it and redirections, pipes and comments
    after it are not its arguments; ``pip show mlflow-secrets-auth`` is not a command of ours.
    Synopsis brackets (``[--json]``) are dropped."""
    if CLI not in text:
        return []
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote in prose
        tokens = text.split()
    found: list[list[str]] = []
    segment_start = 0
    for index, token in enumerate(tokens):
        if token in _BREAKS:
            segment_start = index + 1
            continue
        if token != CLI or any(t in _PACKAGE_WORDS for t in tokens[segment_start:index]):
            continue
        args: list[str] = []
        for later, arg in enumerate(tokens[index + 1 :], start=index + 1):
            if arg in _BREAKS:
                break
            if arg.isdigit() and later + 1 < len(tokens) and tokens[later + 1] in _BREAKS:
                break  # the 2 of "2> file"
            cleaned = arg.strip("[]")
            if cleaned and cleaned != "...":
                args.append(cleaned)
        found.append(args)
    return found
