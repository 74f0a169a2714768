"""The README's relative links name files of the repository (a link to a log never committed is a
claim nobody can check)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def relative_links(text: str) -> list[str]:
    """Targets of the markdown links in ``text`` that are not URLs."""
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_relative_links_are_found_and_urls_are_not() -> None:
    text = "see [a](docs/a.md#part), [b](https://example.com/x) and [c](mailto:x@y.z) or [d](b.png)"
    assert relative_links(text) == ["docs/a.md", "b.png"]


def test_every_relative_link_of_the_readme_names_a_file_in_the_repository() -> None:
    links = relative_links((ROOT / "README.md").read_text())
    assert links, "the README links nothing: the pattern is broken"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README.md links files that are not in the repository: {missing}"
