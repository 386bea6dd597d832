"""``egregora site serve``: the site written from the database, previewed with MkDocs."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from egregora.cli.app import app
from tests.conftest import Demo


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _page(url: str, deadline: float) -> str:
    """The page at ``url`` once the server answers (it builds the site first)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return str(answer.read().decode("utf-8"))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_serve_writes_the_site_and_serves_its_pages(demo: Demo, tmp_path: Path) -> None:
    site, port = tmp_path / "preview", _free_port()
    args = ["site", "serve", "--site", str(site), "--port", str(port), "--db", demo.db, "--json"]
    server = subprocess.Popen(
        [sys.executable, "-m", "egregora", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the server and its MkDocs child stop together
    )
    try:
        assert server.stdout is not None
        said = json.loads(server.stdout.readline())
        assert said["ok"] is True and said["url"] == f"http://127.0.0.1:{port}/"
        assert said["site"] == str(site) and (site / "mkdocs.yml").is_file()
        home = _page(said["url"], time.monotonic() + 60)
        assert "<html" in home and "Trip Planners" in home
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.communicate(timeout=60)
    assert server.returncode == 0


@pytest.mark.parametrize("absent", ["mkdocs", "material", "mkdocs_rss_plugin"])
def test_serve_without_mkdocs_says_how_to_install_it(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, absent: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == absent else real(name, *a)
    )
    site = tmp_path / "preview"
    done = CliRunner().invoke(app, ["site", "serve", "--site", str(site), "--db", demo.db])
    assert done.exit_code == 2, done.output
    assert f"{absent} is not installed here" in done.output
    assert "pip install 'egregora[site]'" in done.output
    assert not site.exists()  # refused before the site was written
