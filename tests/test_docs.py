"""The README and docs stay short, true and about the product: links resolve, every `make` target
they name exists, every top-level folder is in the README's layout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from devstack.paths import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


# Made and remade by tools as they run, never looked into by a reader.
TRANSIENT = {".git", "__pycache__", "test-artifacts", "build", "node_modules"}


def _top_level_folders() -> set[str]:
    """Every folder at the top: those in git (.ci too) and those the checkout makes (data, .venv)."""
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    tracked = {line.split("/", 1)[0] for line in out.splitlines() if "/" in line}
    made = {path.name for path in REPO.iterdir() if path.is_dir()}
    return {name for name in tracked | made if name not in TRANSIENT and not name.endswith(("_cache", ".egg-info"))}


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
    missing = sorted(d for d in _top_level_folders() if not re.search(rf"(^|\s){re.escape(d)}/", layout, flags=re.M))
    assert not missing, f"README's layout does not list: {missing}"


# Words that narrate how the work on the project was organised (numbered work periods, tracker items,
# merges) instead of the product. Product words that look alike stay legal: an ONNX Runtime session,
# pytest's scope="session", a helper function, a job's ticket, the NVIDIA device plugin.
WORK_WORDS = re.compile(
    r"\b(this|that|each|every|working|earlier|previous|next|last|first|second|third|fourth|fifth|sixth)"
    r"( working)? sessions?\b|\bsessions?'s?\b(?= (runs?|machine|code|work|commits?|stop))|\bsessions? \d+\b"
    r"|\b(issue|ticket|pull request|PR)\s*#?\d+\b|\b(of|in|by|for) (the|this|that) (issue|ticket)\b"
    r"|\b(the|this|that) (issue|ticket|brief) (asks?|asked|says|said|wants?|requires?)\b"
    r"|\blanded\b|\bCI failed\b|\bsprints?\b|\bwork items?\b|\bhelper sessions?\b",
    re.IGNORECASE,
)
# A bare tracker reference ("#13"); not looked for in style sheets and pictures, where #333 is a colour.
TRACKER_REF = re.compile(r"(?<![&\w#])#\d{1,4}\b(?![\w-])")
STYLE = (".css", ".svg", ".html")
# Vendored or binary files: not written here (upstream schemas are kept byte for byte: SHA-256 pinned).
NOT_OURS = re.compile(r"(^gallery/|^tools/upstream-schemas/|swagger-ui|\.(png|jpe?g|ico|gz|onnx|pt)$)")


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / name for name in out.splitlines() if not NOT_OURS.search(name)]


# The narrating examples are joined from words, so that this file too speaks of the product only.
@pytest.mark.parametrize(
    ("line", "narrates"),
    [
        (" ".join(("the second", "session", "measured it on a Xeon")), True),
        (" ".join(("as", "session", "4", "found")), True),
        (" ".join(("# Computed, shown, not a target of the", "issue.")), True),
        (" ".join(("fixes", "issue", "#13")), True),
        (" ".join(("see", "#13", "and", "ticket", "7")), True),
        (" ".join(("the code as it", "landed")), True),
        (" ".join(("CI", "failed on a flaky test")), True),
        ("ONNX Runtime's session and one inference", False),
        ('@pytest.fixture(scope="session")', False),
        ("one helper runs N store calls", False),
        ("Pick an image, get a ticket, watch a worker classify it.", False),
        ("the NVIDIA device plugin", False),
        ("an issue with the broker", False),
        (" ".join(("as", "#13", "asked")), True),
        ("&#13; in an XML reply, color: #fff", False),
    ],
)
def test_work_words_pattern(line: str, narrates: bool) -> None:
    assert bool(WORK_WORDS.search(line) or TRACKER_REF.search(line)) is narrates


def test_files_speak_of_the_product_only() -> None:
    """Every tracked file we wrote (code, docs, results, manifests) and every path name."""
    this = Path(__file__).resolve()
    found = []
    for path in _tracked_text_files():
        rel = str(path.relative_to(REPO))
        if WORK_WORDS.search(rel.replace("/", " ").replace("_", " ").replace("-", " ")):
            found.append(f"{rel}: (file name)")
        if path.resolve() == this or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [
            f"{rel}:{n}: {line.strip()}"
            for n, line in enumerate(text.splitlines(), 1)
            if (WORK_WORDS.search(line) or (TRACKER_REF.search(line) and not rel.endswith(STYLE)))
            and "start_new_session" not in line
        ]
    assert not found, "\n".join(found)
