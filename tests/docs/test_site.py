"""The manual builds: `mkdocs build --strict` (a broken link or anchor between pages fails it), every
page of the nav is in the site, and the README's links to the manual point at pages that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def nav_pages(nav) -> list[str]:
    """Every Markdown file named in mkdocs.yml's nav, depth first."""
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


def built_page(site: Path, page: str) -> Path:
    """Where mkdocs writes a page with directory URLs: guide/cli.md -> guide/cli/index.html."""
    stem = page.removesuffix(".md")
    return site / ("index.html" if stem == "index" else f"{stem}/index.html")


def test_site_builds_strict_with_every_page(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2 is not a warning of ours
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, (
        "mkdocs build --strict failed (is the dev extra installed? pip install -e '.[dev]'):\n"
        + result.stdout + result.stderr
    )
    site = tmp_path / "site"
    pages = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    for page in ("index.md", "results.md", "tricks.md", "speed.md", "datasets.md",
                 "guide/configuration.md", "guide/extending.md"):
        assert page in pages, f"{page} is not in mkdocs.yml's nav"
    missing = [page for page in pages if not built_page(site, page).is_file()]
    assert not missing, f"pages of the nav missing from the built site: {missing}"


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t)]
    assert any(t.startswith("docs/") for t in local), "the README links to no page of the manual"
    broken = [t for t in local if t and not (ROOT / t).exists()]
    assert not broken, f"README.md links to files that do not exist: {broken}"
