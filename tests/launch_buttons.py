"""The buttons of a built notebook page (sphinx-book-theme's header dropdowns), against what _config.yml says.

Shared by the book build's test (every chapter of the real build) and tests/test_deploy.py (a one-page build)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# Binder's URL path for each notebook_interface of jupyter-book's launch_buttons
INTERFACES = {"classic": "tree", "jupyterlab": "lab/tree"}


def expected_links(config: dict[str, Any], notebook: str) -> dict[str, dict[str, str]]:
    """The header links of the page of ``notebook`` (its path in the repository), by dropdown and button text,
    computed from ``config`` (_config.yml) with Binder's and Colab's URL schemes for a GitHub repository."""
    repository, launch = config["repository"], config["launch_buttons"]
    owner, name = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", repository["url"]).groups()
    prefix = (repository.get("path_to_book") or "").strip("/")  # the book's folder in the repository
    branch, path = repository["branch"], f"{prefix}/{notebook}" if prefix else notebook
    binder = f"{launch['binderhub_url']}/v2/gh/{owner}/{name}/{branch}?urlpath={INTERFACES[launch['notebook_interface']]}"
    return {"launch": {"Binder": f"{binder}/{path}",
                       "Colab": f"{launch['colab_url']}/github/{owner}/{name}/blob/{branch}/{path}"},
            "source": {"Repository": repository["url"]},
            "download": {".ipynb": f"../_sources/{notebook}"}}


def header_links(page: str) -> dict[str, dict[str, str]]:
    """The page's header dropdowns in order (launch, source, download, ...), each {button text: href}."""
    dropdowns = re.findall(r'<div class="dropdown dropdown-([a-z]+)-buttons">(.*?)</ul>', page, flags=re.S)
    link = r'<a href="([^"]*)"[^>]*>.*?<span class="btn__text-container">([^<]*)</span>'
    return {kind: {text: href for href, text in re.findall(link, body, flags=re.S)} for kind, body in dropdowns}


def assert_buttons(html: Path, notebook: str, config: dict[str, Any]) -> None:
    """The built page of ``notebook`` (``notebooks/01_x.ipynb``) under ``html`` has the launch buttons that
    ``config`` asks for, first, beside the repository and download buttons, with their icons served."""
    found = header_links((html / notebook).with_suffix(".html").read_text())
    expected = expected_links(config, notebook)
    assert list(found)[:3] == ["launch", "source", "download"], f"{notebook}: header dropdowns {list(found)}"
    for kind, links in expected.items():
        assert {text: found[kind].get(text) for text in links} == links, f"{notebook}: {kind} buttons"
    assert (html / "_static" / "images" / "logo_binder.svg").is_file()
    assert (html / "_static" / "images" / "logo_colab.png").is_file()
