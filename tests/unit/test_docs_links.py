"""The docs stand alone: every relative link resolves, and nothing cites a file from
outside the repository.

- Every relative Markdown link (and image) in README.md and docs/**/*.md points to a
  file or folder that exists; a `#fragment` must name a heading of the target page
  (GitHub's heading ids).
- No file of the repository (outside .venv, .git, runs and build caches) mentions the
  design notes that live outside it. The names are built by concatenation so that
  this file does not mention them itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

OUTSIDE_NAMES = (*(name + ".md" for name in ("PAPERS", "ARCHITECTURE", "STYLE")), ".." + "/shared")
SKIPPED_DIRS = {
    ".venv", ".git", "runs", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    ".zoo", "node_modules", "build", "dist",
}  # fmt: skip
LARGEST_FILE_BYTES = 5_000_000
"""Larger files are build outputs or data (model files), never prose that cites."""

# [text](target) and ![alt](target), target up to the first space or ')'; not inside
# inline code (stripped first).
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks, with inline code removed."""
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield CODE_SPAN.sub("", line)


def heading_ids(path: Path) -> set[str]:
    """GitHub's ids of a page's headings: lower case, punctuation dropped, spaces → '-',
    repeats numbered."""
    seen: dict[str, int] = {}
    ids = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2)).lower()
        slug = "".join(ch for ch in text if ch.isalnum() or ch in "-_ ").replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def relative_links(path: Path) -> Iterator[str]:
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:
                continue
            yield target


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        file_part, _, fragment = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in heading_ids(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_checker_sees_links() -> None:
    """Guards the checker itself: README.md links to docs, and papers.md's §A anchor
    is a heading id."""
    assert "docs/papers.md" in set(relative_links(ROOT / "README.md"))
    assert any(i.startswith("a-maddpg-mato") for i in heading_ids(ROOT / "docs" / "papers.md"))


def repository_files() -> Iterator[Path]:
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            if path.is_file() and path.stat().st_size <= LARGEST_FILE_BYTES:
                yield path


def test_no_file_cites_outside_notes() -> None:
    needles = [name.encode() for name in OUTSIDE_NAMES]
    hits = []
    for path in repository_files():
        data = path.read_bytes()
        for needle, name in zip(needles, OUTSIDE_NAMES, strict=True):
            if needle in data:
                line = data[: data.index(needle)].count(b"\n") + 1
                hits.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not hits, "cites a file outside the repository (cite docs/ instead): " + ", ".join(hits)
