"""A PostgreSQL that accepts connections and never answers: every command gives up within the
connection timeout, with one line naming the cause and the fix, instead of hanging."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from egregora.backends.postgres import CONNECT_TIMEOUT, TIMEOUT_VAR, connect_timeout
from egregora.errors import ConfigurationError


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A URL whose server accepts every connection and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            held.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    yield f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/test"
    listener.close()
    for connection in held:
        connection.close()


@pytest.mark.parametrize(
    "command", [["db", "status"], ["db", "migrate", "--wait", "5"], ["work", "--until-empty"]]
)
def test_a_silent_server_is_given_up_within_the_timeout_naming_the_fix(
    silent_server: str, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TIMEOUT_VAR, "1")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "egregora", *command, "--db", silent_server],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line, no traceback
    assert "no answer within 1 s" in lines[0] and TIMEOUT_VAR in lines[0], lines[0]
    assert took < 30, f"took {took:.1f} s"  # the interpreter's start, then one second


def test_the_default_timeout_is_well_within_45_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_VAR, raising=False)
    assert connect_timeout("postgresql://h/db") == CONNECT_TIMEOUT <= 45


def test_the_url_and_the_environment_set_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_VAR, "7")
    assert connect_timeout("postgresql://h/db") == 7
    assert connect_timeout("postgresql://h/db?connect_timeout=3") == 3  # the URL's own wins
    monkeypatch.setenv(TIMEOUT_VAR, "soon")
    with pytest.raises(ConfigurationError, match="a number of seconds"):
        connect_timeout("postgresql://h/db")
    monkeypatch.setenv(TIMEOUT_VAR, "-1")
    with pytest.raises(ConfigurationError, match="a number of seconds"):
        connect_timeout("postgresql://h/db")
    assert connect_timeout("postgresql://h/db?connect_timeout=0") == 0  # libpq's "no limit"
