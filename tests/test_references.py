"""Every cross-reference resolves: links in the README and docs/, and the files and modules
that comments and docstrings in the code name."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CODE = sorted(p for folder in ("app", "bench", "config", "migrations") for p in (ROOT / folder).rglob("*.py"))
CODE.append(ROOT / "asgi.py")

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w/.-])((?:app|docs|config|tests|bench|migrations|templates|static)/[\w./-]*\w)")
MODULE = re.compile(r"``(app(?:\.\w+)+)``")


# Made when the benchmark runs (not in the repository).
GENERATED = ("bench/results",)


def names(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=names)
def test_links_and_paths_in_the_docs_exist(doc):
    """A relative link names a file that exists, and its anchor a heading of that file; a path
    in the text (``app/…``, ``config/…``) names a file that exists."""
    text = doc.read_text()
    missing = [path for path in PATH.findall(text) if not _exists(path)]
    for target in LINK.findall(re.sub(r"```.*?```", "", text, flags=re.S)):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            missing.append(target)
    assert missing == []


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page."""
    found, fence = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (match := re.match(r"^#{1,6} (.+)$", line)):
            found.add(re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("source", CODE, ids=names)
def test_files_and_modules_named_in_the_code_exist(source):
    text = source.read_text()
    missing = [path for path in PATH.findall(text) if not _exists(path)]
    missing += [dotted for dotted in MODULE.findall(text) if _names_a_module(dotted) and not _resolves(dotted)]
    assert missing == []


def _exists(path: str) -> bool:
    return (ROOT / path).exists() or path.startswith(GENERATED)


def _names_a_module(dotted: str) -> bool:
    """``app.x…`` where app/x is a module or package (``app.wsgi_app`` is Flask's attribute)."""
    first = dotted.split(".")[1]
    return (ROOT / "app" / f"{first}.py").exists() or (ROOT / "app" / first).is_dir() or first in _FORMER



# Modules that moved: a reference to one of these old names is a stale reference.
_FORMER = {"serving", "inline", "errors", "wellknown", "dbapi", "sqlite_writers", "migrations_state", "clock",
           "hashing", "fetch", "devsecrets", "untrusted_json", "admins", "keys", "_configure_engine"}


def _resolves(dotted: str) -> bool:
    """``app.a.b`` is a module, or a name defined in one (``app.a.b.name``, ``app.a.Class.attr``)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False
