"""The docs name only what exists: every module path in docs/architecture.md is a file of the
repository, and no document cites material outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*/README.md"))]


def test_architecture_names_only_modules_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:edgefn|manager|runtimes)/[\w/]*(?:\.py)?)`", text))
    assert named, "the module map is empty"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_manager_module_is_in_the_architecture_map() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = sorted(f"manager/{path.name}" for path in (ROOT / "manager").glob("*.py") if path.name != "__init__.py")
    assert [module for module in modules if f"`{module}`" not in text] == []


def test_no_document_cites_files_outside_the_repository() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert not re.search(r"SPEC( |\.md|§)|\.\./shared|issue #\d", text), f"{doc.relative_to(ROOT)} cites outside material"
