"""The README and docs stay short, true and about the product: links resolve, every `make` target
they name exists, every top-level folder is in the README's layout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from devstack.paths import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _tracked_top_level() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {line.split("/", 1)[0] for line in out.splitlines() if "/" in line and not line.startswith(".")}


def _make_targets() -> set[str]:
    out = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z0-9][a-zA-Z0-9_.-]*):", out, flags=re.M)}


def test_readme_is_short() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 150


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_make_targets_named_exist(doc: Path) -> None:
    targets = _make_targets()
    named = set()
    spans = (span for line in doc.read_text().splitlines() for span in re.findall(r"`([^`]+)`", line))
    for cmd in (span for span in spans if re.match(r"([A-Z_]+=\S+ )*make ", span)):
        # `make kind-up deploy`, `WORKERS=3 make stack`, `make experiment PROFILE=step`: targets come first
        for word in cmd.split("make ", 1)[1].split():
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", word):
                break
            named.add(word)
    missing = sorted(named - targets)
    assert not missing, f"{doc.name} names make targets that do not exist: {missing}"


def test_readme_layout_lists_every_top_level_folder() -> None:
    readme = (REPO / "README.md").read_text()
    layout = readme.split("## Repository layout", 1)[1]
    missing = sorted(d for d in _tracked_top_level() if not re.search(rf"(^|\s){re.escape(d)}/", layout, flags=re.M))
    assert not missing, f"README's layout does not list: {missing}"


# Words that narrate the project's own history (numbered work periods, tracker numbers) instead of the product.
WORK_WORDS = re.compile(
    r"\b(this|that|each|every|working|earlier|previous|next|first|second|third|fourth|fifth|sixth)"
    r"( working)? sessions?\b|\bsessions?'s?\b(?= (runs?|machine|code|work))|\bissue\s+#?\d+|\blanded\b",
    re.IGNORECASE,
)


def test_docs_speak_of_the_product_only() -> None:
    files = [*DOCS, *(REPO / "mk").glob("*.mk"), *(REPO / "bench").glob("*.py")]
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if WORK_WORDS.search(line) and "start_new_session" not in line
    ]
    assert not found, "\n".join(found)
