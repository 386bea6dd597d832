"""Limits on waiting for PostgreSQL, each ending in one line naming what expired and the fix:
a server that accepts connections and never answers (the connection timeout), a statement
that runs too long (the statement timeout), and a server gone silent in the middle of a
statement (TCP keepalives and tcp_user_timeout)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql as pgsql

from egregora.backends import POSTGRES, DatabaseURL
from egregora.backends.postgres import (
    CONNECT_TIMEOUT,
    NETWORK_SETTINGS,
    STATEMENT_TIMEOUT,
    STATEMENT_TIMEOUT_VAR,
    TIMEOUT_VAR,
    StatementTimeout,
    connect_timeout,
    statement_timeout,
)
from egregora.errors import ConfigurationError, DatabaseError
from egregora.storage import Storage
from tests.support import db_arg


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


# -- the statement timeout ---------------------------------------------------------------------
def _with_options(url: DatabaseURL, *options: str) -> str:
    """``url`` (a test schema's, whose options set search_path) with more server options."""
    dsn = db_arg(url)
    extra = quote(" ".join(options) + " ")
    assert "options=" in dsn
    return dsn.replace("options=", f"options={extra}", 1)


def test_the_default_statement_timeout_leaves_room_for_long_migrations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(STATEMENT_TIMEOUT_VAR, raising=False)
    monkeypatch.delenv("PGOPTIONS", raising=False)
    limit = statement_timeout("postgresql://h/db")
    assert limit.seconds == STATEMENT_TIMEOUT and limit.source == "default"
    assert 10 * 60 <= STATEMENT_TIMEOUT <= 60 * 60


def test_the_url_and_the_environment_set_the_statement_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGOPTIONS", raising=False)
    monkeypatch.setenv(STATEMENT_TIMEOUT_VAR, "2.5")
    assert statement_timeout("postgresql://h/db") == StatementTimeout(2.5, "env")
    monkeypatch.setenv(STATEMENT_TIMEOUT_VAR, "0")
    assert statement_timeout("postgresql://h/db").seconds == 0  # no limit
    # The URL's own wins, in PostgreSQL's spelling: milliseconds unless a unit is given.
    for options, seconds in [
        ("-c%20statement_timeout%3D5s", 5),
        ("-cstatement_timeout%3D1500", 1.5),
        ("--statement-timeout%3D2min", 120),
        ("-csearch_path%3Dx%20-c%20statement_timeout%3D0", 0),
    ]:
        found = statement_timeout(f"postgresql://h/db?options={options}")
        assert found == StatementTimeout(seconds, "url"), options
    assert statement_timeout("postgresql://h/db?options=-csearch_path%3Dx").source == "env"


def test_pgoptions_sets_the_statement_timeout_when_the_url_has_no_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(STATEMENT_TIMEOUT_VAR, "60")
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=2s")  # libpq reads it then
    assert statement_timeout("postgresql://h/db") == StatementTimeout(2, "PGOPTIONS")
    found = statement_timeout("postgresql://h/db?options=-csearch_path%3Dx")
    assert found == StatementTimeout(60, "env")  # the URL's options replace $PGOPTIONS


@pytest.mark.parametrize("given", ["soon", "-1", "inf", "nan"])
def test_a_statement_timeout_not_in_seconds_is_refused(
    given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGOPTIONS", raising=False)
    monkeypatch.setenv(STATEMENT_TIMEOUT_VAR, given)
    with pytest.raises(ConfigurationError, match="a number of seconds") as refused:
        statement_timeout("postgresql://h/db")
    assert STATEMENT_TIMEOUT_VAR in str(refused.value) and "\n" not in str(refused.value)


def test_a_statement_timeout_in_the_url_the_server_would_refuse_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a duration"):
        statement_timeout("postgresql://h/db?options=-c%20statement_timeout%3Dsoon")
    with pytest.raises(ConfigurationError, match="not a duration"):
        statement_timeout("postgresql://h/db?options=-c%20statement_timeout%3D5parsecs")


def test_a_bad_statement_timeout_is_one_line_before_connecting(silent_server: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "egregora", "db", "status", "--db", silent_server],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, STATEMENT_TIMEOUT_VAR: "soon"},
    )
    assert done.returncode == 2, done.stderr  # a configuration error, found before connecting
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and STATEMENT_TIMEOUT_VAR in lines[0], done.stderr


def test_a_statement_past_the_timeout_is_cancelled_in_one_line(
    pg_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATEMENT_TIMEOUT_VAR, "1")
    with Storage.open(db_arg(pg_url)) as store:
        assert store.query("SELECT current_setting('statement_timeout')") == [("1s",)]
        started = time.monotonic()
        with pytest.raises(DatabaseError) as cancelled:
            store.query("SELECT pg_sleep(3)")
        assert time.monotonic() - started < 2.5
        message = str(cancelled.value)
        assert "\n" not in message
        assert "statement timeout of 1 s" in message and STATEMENT_TIMEOUT_VAR in message
        assert store.query("SELECT 1") == [(1,)]  # the session goes on


def test_the_migrations_connection_has_the_statement_timeout_too(
    pg_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATEMENT_TIMEOUT_VAR, "1")
    with POSTGRES.open_executor(pg_url, write=True) as executor:
        executor.rollback()  # the setting outlives the transaction it was made in
        assert executor.query("SELECT current_setting('statement_timeout')") == [("1s",)]
        with pytest.raises(DatabaseError, match="statement timeout of 1 s"):
            executor.query("SELECT pg_sleep(3)")


def test_the_urls_statement_timeout_wins_and_is_named_as_the_fix(
    pg_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATEMENT_TIMEOUT_VAR, "60")
    with Storage.open(_with_options(pg_url, "-c statement_timeout=500ms")) as store:
        assert store.query("SELECT current_setting('statement_timeout')") == [("500ms",)]
        with pytest.raises(DatabaseError) as cancelled:
            store.query("SELECT pg_sleep(3)")
    message = str(cancelled.value)
    assert "statement timeout of 0.5 s" in message and "URL's options" in message, message


def test_no_statement_timeout_when_set_to_0(
    pg_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATEMENT_TIMEOUT_VAR, "0")
    with Storage.open(db_arg(pg_url)) as store:
        assert store.query("SELECT current_setting('statement_timeout')") == [("0",)]


def test_a_command_waiting_on_a_lock_stops_at_the_statement_timeout(
    pg_url: DatabaseURL, postgres_url: str
) -> None:
    with Storage.open(db_arg(pg_url)) as store:
        store.ensure_schema()
    schema = parse_qs(urlsplit(db_arg(pg_url)).query)["options"][0].split("=", 1)[1]
    with psycopg.connect(postgres_url) as holder:  # a session that forgot its transaction
        holder.execute(
            pgsql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                pgsql.Identifier(schema, "runs")
            )
        )
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "egregora", "runs", "list", "--db", db_arg(pg_url)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, STATEMENT_TIMEOUT_VAR: "1"},
        )
        took = time.monotonic() - started
        holder.rollback()
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line, no traceback
    assert "statement timeout of 1 s" in lines[0] and STATEMENT_TIMEOUT_VAR in lines[0]
    assert took < 30, f"took {took:.1f} s"


# -- a server that stops answering mid-statement ------------------------------------------------
def test_connections_carry_keepalives_and_a_tcp_user_timeout(pg_url: DatabaseURL) -> None:
    with Storage.open(db_arg(pg_url)) as store:
        given = store.con.info.get_parameters()
    assert given["tcp_user_timeout"] == NETWORK_SETTINGS["tcp_user_timeout"]
    assert given["keepalives_idle"] == NETWORK_SETTINGS["keepalives_idle"]
    assert int(given["tcp_user_timeout"]) <= 30_000  # a dead server is given up within 30 s
    separator = "&" if "?" in db_arg(pg_url) else "?"
    with Storage.open(f"{db_arg(pg_url)}{separator}tcp_user_timeout=1234") as store:
        assert store.con.info.get_parameters()["tcp_user_timeout"] == "1234"  # the URL wins


class FreezingProxy:
    """Forwards a PostgreSQL connection until the client sends a large message (after the
    handshake and the session's setup), then stops reading and forwarding for good: to the
    client, a server whose network went away in the middle of a statement."""

    def __init__(self, target: tuple[str, int], large: int = 256 * 1024) -> None:
        self.target, self.large = target, large
        self.frozen = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.held += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        while not self.frozen.is_set():
            try:
                data = source.recv(self.large)
            except OSError:
                return
            if not data:
                return
            if upstream and len(data) >= self.large // 2:
                self.frozen.set()
            if not self.frozen.is_set():
                sink.sendall(data)
        # Frozen: nothing more is read or passed on, and the sockets stay open.

    def close(self) -> None:
        self.listener.close()
        for held in self.held:
            held.close()


_SEND_A_LARGE_STATEMENT = """
import sys
import typer
from egregora.cli.output import reported_errors
from egregora.storage import Storage

try:
    with reported_errors(False), Storage.open(sys.argv[1]) as store:
        store.query("SELECT length(?)", ["x" * 64_000_000])
except typer.Exit as done:
    raise SystemExit(done.exit_code) from None
"""


def test_a_server_gone_silent_mid_statement_is_given_up_in_one_line(pg_url: DatabaseURL) -> None:
    parts = urlsplit(db_arg(pg_url))
    proxy = FreezingProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        query = f"{parts.query}&tcp_user_timeout=1000&keepalives_idle=1&keepalives_interval=1"
        proxied = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}", query=query)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", _SEND_A_LARGE_STATEMENT, urlunsplit(proxied)],
            capture_output=True,
            text=True,
            timeout=90,  # hanging forever fails the test here
        )
        took = time.monotonic() - started
    finally:
        proxy.close()
    assert proxy.frozen.is_set()
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line, no traceback
    assert lines[0].startswith("error: lost the connection to"), lines[0]
    assert "did not answer for 1 s" in lines[0] and "tcp_user_timeout" in lines[0], lines[0]
    assert took < 45, f"took {took:.1f} s"
