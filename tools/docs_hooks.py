"""MkDocs hooks for the pconv site (``mkdocs.yml``: ``hooks: [tools/docs_hooks.py]``).

Two kinds of page are made at build time, so they cannot drift from their source (and, after the build, the
Try it page in ``site/try``: ``tools/build_try.py``):

- Files that live outside ``docs/`` because the package, the tests or GitHub's front page need them there
  (``README.md``, ``CONTRIBUTING.md``, ``CHANGELOG.md``, the model card, ``benchmarks/RESULTS.md``) are included
  as pages, with their relative links rewritten to the site's pages (``INCLUDED``). A link to a repository file
  that is not on the site (a script, a config) becomes its path in code font.
- ``reference/cli.md``: every ``pconv`` subcommand's ``--help``, from the argparse parsers themselves.

Every page is also read as GitHub reads it (the pages are read on GitHub too): a list may start right under a
paragraph or a code block, where Python-Markdown wants a blank line first (``blank_line_before_lists``).
"""

from __future__ import annotations

import argparse
import os
import posixpath
import re
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))  # document this checkout's pconv, not another install

# Repository file -> its path on the site (under docs_dir). Add a line to put another file on the site.
INCLUDED: dict[str, str] = {
    "README.md": "index.md",
    "CONTRIBUTING.md": "contributing.md",
    "CHANGELOG.md": "changelog.md",
    "src/pconv/weights/MODEL_CARD.md": "model_card.md",
    "benchmarks/RESULTS.md": "performance/results.md",
    "benchmarks/results.png": "performance/results.png",
}
CLI_PAGE = "reference/cli.md"
HELP_COLUMNS = "80"  # argparse wraps --help to $COLUMNS: fixed, so the page is the same everywhere and fits

# [text](target) and ![alt](target), target without a title; the text may hold `code` but no brackets.
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
LIST_ITEM = re.compile(r"([-*+]|\d+\.) ")
FENCE = re.compile(r"\s*(```|~~~)")


def site_path(repo_path: str, docs_dir: Path) -> str | None:
    """The site path (relative to docs_dir) of a repository path, or None when the file is not on the site."""
    if repo_path in INCLUDED:
        return INCLUDED[repo_path]
    full = REPO / repo_path
    if full.is_relative_to(docs_dir) and full.exists():
        return full.relative_to(docs_dir).as_posix()
    return None


def rewrite_links(markdown: str, source: str, page: str, docs_dir: Path) -> str:
    """Point the relative links of repository file ``source`` (placed on the site as ``page``) at site pages."""

    def replace(match: re.Match[str]) -> str:
        bang, text, target = match.groups()
        if re.match(r"[a-z][a-z0-9+.-]*:|#|/", target):  # URL, anchor or absolute path: leave it
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        on_site = site_path(repo_path, docs_dir)
        if on_site is None:  # e.g. a script or a config: name it instead of linking out of the site
            return text if f"`{repo_path}`" in text or bang else f"{text} (`{repo_path}`)"
        relative = posixpath.relpath(on_site, posixpath.dirname(page) or ".")
        return f"{bang}[{text}]({relative}{'#' + anchor if anchor else ''})"

    return LINK.sub(replace, markdown)


def blank_line_before_lists(markdown: str) -> str:
    """Insert a blank line where a top-level list starts right under other text (outside code blocks)."""
    out: list[str] = []
    in_fence = False
    for line in markdown.split("\n"):
        starts_list = not in_fence and LIST_ITEM.match(line)
        previous = out[-1] if out else ""
        if starts_list and previous.strip() and not LIST_ITEM.match(previous) and not previous.startswith(" "):
            out.append("")
        if FENCE.match(line):
            in_fence = not in_fence
        out.append(line)
    return "\n".join(out)


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|")


def cli_reference() -> str:
    """Markdown for every ``pconv`` subcommand: its one-line summary and its ``--help``, as the CLI prints it."""
    from pconv.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        parser = build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        lines = [
            "# CLI reference",
            "",
            "Every `pconv` command with its `--help`, generated from the argparse parsers when the site is built "
            "(`tools/docs_hooks.py`), so it always matches the code. `python -m pconv` takes the "
            "same commands. Usage errors print one line `pconv <command>: error: ...` and exit with status 2.",
            "",
            "| command | what it does |",
            "|---|---|",
            *(f"| [`pconv {name}`](#pconv-{name}) | {_cell(sub.description)} |" for name, sub in commands.items()),
        ]
        for name, sub in commands.items():
            lines += ["", f"## pconv {name}", "", sub.description or "", "", "```text", sub.format_help().rstrip()]
            lines += ["```"]
        return "\n".join(lines) + "\n"
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the included repository files and the generated CLI reference to the site."""
    docs_dir = Path(config.docs_dir).resolve()
    for source, page in INCLUDED.items():
        if page.endswith(".md"):
            text = rewrite_links((REPO / source).read_text(encoding="utf-8"), source, page, docs_dir)
            files.append(File.generated(config, page, content=text))
        else:
            files.append(File.generated(config, page, abs_src_path=str(REPO / source)))
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    return files


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    """Every page: lists that GitHub starts without a blank line start on the site too."""
    return blank_line_before_lists(markdown)


def on_post_build(config: MkDocsConfig) -> None:
    """The Try it page (the editor running the model in the browser) into ``site/try`` (``tools/build_try.py``)."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_try
    finally:
        sys.path.remove(str(REPO / "tools"))
    build_try.build(Path(config.site_dir))
