"""make test-docs: every relative link in the Markdown pages resolves.

For README.md, docs/*.md, bench/README.md and the chart's and monitoring's
READMEs: each relative link or image (inline, reference definition, or HTML
href/src) names a file or directory that exists, and each #anchor on a
Markdown page names one of its headings, slugged as GitHub does (lower case,
punctuation dropped, spaces to hyphens, -1, -2, ... for repeats), or an
explicit <a id/name>. Links inside code are not links. Absolute URLs are not
fetched.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

from harness import ROOT

pytestmark = pytest.mark.docs

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench/README.md",
         ROOT / "deploy/helm/userapi/README.md", ROOT / "deploy/monitoring/README.md"]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
HTML_ANCHOR = re.compile(r"""<a\b[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
ABSOLUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):]:
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        out.append((number, line))
    return out


def github_slug(heading: str) -> str:
    """The id GitHub gives a heading (before de-duplication)."""
    text = re.sub(r"<[^>]+>", "", heading)
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", text)
    text = text.replace("`", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, line in prose_lines(text):
        anchors.update(HTML_ANCHOR.findall(line))
        m = HEADING.match(line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@functools.cache
def anchors_in(path: Path) -> frozenset[str]:
    return frozenset(anchors_of(path.read_text(encoding="utf-8")))


def links_of(text: str) -> list[tuple[int, str]]:
    links = []
    for number, line in prose_lines(text):
        m = REFERENCE.match(line)
        if m:
            links.append((number, m.group(1)))
            continue
        line = INLINE_CODE.sub("", line)
        links += [(number, target) for target in INLINE_LINK.findall(line) + HTML_LINK.findall(line)]
    return [(n, t[1:-1] if t.startswith("<") and t.endswith(">") else t) for n, t in links]


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in links_of(page.read_text(encoding="utf-8")):
        if ABSOLUTE.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part)
        if not path_part:
            dest = page
        elif path_part.startswith("/"):
            dest = root / path_part.lstrip("/")
        else:
            dest = page.parent / path_part
        where = f"{page.relative_to(root).as_posix()}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file or directory")
        elif anchor and dest.is_file() and dest.suffix == ".md" and unquote(anchor) not in anchors_in(dest.resolve()):
            problems.append(f"{where}: no heading with this anchor in {dest.resolve().relative_to(root.resolve()).as_posix()}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_relative_links_and_anchors_resolve(page):
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing"
    problems = broken_links(page)
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize(("heading", "slug"), [
    ("CI/CD", "cicd"),
    ("Argo CD (GitOps)", "argo-cd-gitops"),
    ("`userapi config` and `--set`", "userapi-config-and---set"),
    ("From SQLite to PostgreSQL", "from-sqlite-to-postgresql"),
    ("Adding a field: an optional `phone`", "adding-a-field-an-optional-phone"),
    ("Probes [and](x.md) the management_port", "probes-and-the-management_port"),
    ("Größe & Ümlaut", "größe--ümlaut"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_the_check_finds_broken_links_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Title\n\n## Part\n\n## Part\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Home\n\n## Usage\n\n"
        "[ok](docs/other.md#part-1) [ok](#usage) [ok](https://example.com/nowhere.md) ![ok](docs)\n"
        "`[not a link](missing.md)`\n\n```\n[not a link](missing.md)\n```\n\n"
        "[bad file](docs/missing.md) [bad anchor](docs/other.md#part-2) [bad local](#nowhere)\n"
        "[ref]: docs/gone.md\n<a href=\"docs/absent.md\">x</a>\n")
    problems = broken_links(page, root=tmp_path)
    assert [p.split(": ", 1)[1].split(":")[0] for p in problems] == [
        "docs/missing.md", "docs/other.md#part-2", "#nowhere", "docs/gone.md", "docs/absent.md"], problems
