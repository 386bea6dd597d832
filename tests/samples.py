"""Hand-written valid rows for every table, parents first, covering each kind a rule names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from egregora.schema.model import Table

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def valid_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows that satisfy every rule, keyed by table, in an order that satisfies foreign keys."""
    return {
        "schema_migrations": [
            {
                "id": "0001",
                "description": "initial schema",
                "checksum": "ab" * 32,
                "applied_at": T0,
                "duration_ms": 12,
                "applied_by_host": "host",
                "applied_by_pid": 4242,
                "egregora_version": "0.1.0",
            }
        ],
        "runs": [
            {
                "run_id": "run-1",
                "stage": "ingest",
                "status": "succeeded",
                "started_at": T0,
                "finished_at": at(1),
                "rows_in": 10,
                "rows_out": 9,
                "attrs": '{"k": 1}',
            },
            {
                "run_id": "run-2",
                "parent_run_id": "run-1",
                "stage": "write",
                "status": "failed",
                "started_at": at(2),
                "error": "model timed out",
            },
            {
                "run_id": "run-3",
                "stage": "write",
                "status": "running",
                "started_at": at(3),
                "host": "host",
                "pid": 4242,
                "heartbeat_at": at(4),
            },
        ],
        "documents": [
            {
                "id": "doc-post",
                "doc_type": "post",
                "created_at": T0,
                "updated_at": at(5),
                "title": "Hello",
                "slug": "hello",
                "status": "published",
                "content": "# Hi",
                "date": date(2026, 1, 5),
                "authors": ["u1", "u2"],
                "tags": ["intro"],
                "extensions": '{"lang": "en"}',
                "created_by_run": "run-1",
            },
            {
                "id": "doc-profile",
                "doc_type": "profile",
                "created_at": T0,
                "title": "Ana",
                "subject_uuid": "6f1c0d1e-0000-4000-8000-000000000001",
            },
            {
                "id": "doc-journal",
                "doc_type": "journal",
                "created_at": T0,
                "title": "Day 1",
                "window_signature": "sig-1",
                "window_start": T0,
                "window_end": at(60),
            },
            {
                "id": "doc-media",
                "doc_type": "media",
                "created_at": T0,
                "filename": "pic.jpg",
                "media_type": "image",
                "mime_type": "image/jpeg",
            },
        ],
        "messages": [
            {
                "event_id": "ev-1",
                "source": "whatsapp",
                "thread_id": "group",
                "seq": 0,
                "ts": T0,
                "kind": "text",
                "author_raw": "Ana",
                "author_uuid": "u1",
                "text": "hi",
                "media_omitted": False,
                "created_by_run": "run-1",
            },
            {
                "event_id": "ev-2",
                "source": "whatsapp",
                "thread_id": "group",
                "seq": 1,
                "ts": at(1),
                "kind": "media",
                "author_raw": "Bo",
                "author_uuid": "u2",
                "media_filename": "pic.jpg",
                "media_type": "image",
                "media_omitted": False,
            },
            {
                "event_id": "ev-3",
                "source": "whatsapp",
                "thread_id": "group",
                "seq": 2,
                "ts": at(2),
                "kind": "system",
                "text": "Ana joined",
                "media_omitted": False,
            },
            {
                "event_id": "ev-4",
                "source": "whatsapp",
                "thread_id": "group",
                "seq": 3,
                "ts": at(3),
                "kind": "media",
                "author_raw": "Bo",
                "author_uuid": "u2",
                "media_omitted": True,
            },
        ],
        "annotations": [
            {
                "annotation_id": "an-1",
                "message_id": "ev-1",
                "author": "editor",
                "content": "funny",
                "created_at": at(3),
            },
            {
                "annotation_id": "an-2",
                "document_id": "doc-post",
                "author": "editor",
                "content": "publish",
                "created_at": at(4),
            },
        ],
        "tasks": [
            {
                "task_id": "task-1",
                "run_id": "run-3",
                "task_type": "write_post",
                "status": "pending",
                "dedupe_key": "write:1",
                "payload": '{"window": 1}',
                "priority": 0,
                "attempts": 0,
                "max_attempts": 3,
                "created_at": T0,
                "available_at": T0,
            },
            {
                "task_id": "task-2",
                "task_type": "write_post",
                "status": "running",
                "priority": 5,
                "attempts": 1,
                "max_attempts": 3,
                "lease_owner": "worker-1",
                "lease_expires_at": at(10),
                "created_at": T0,
                "available_at": at(1),
            },
        ],
        "git_repos": [
            {
                "repo_id": "repo-1",
                "root": "/srv/blog",
                "tracked_ref": "refs/heads/main",
                "last_synced_commit": "c" * 40,
                "last_synced_at": T0,
            },
        ],
        "git_commits": [
            {
                "repo_id": "repo-1",
                "commit_sha": "a" * 40,
                "chain_seq": 1,
                "path": "posts/hello.md",
                "change_type": "A",
                "committed_at": T0,
                "authored_at": T0,
                "author_name": "Ana",
                "author_email": "ana@example.org",
                "additions": 10,
                "deletions": 0,
            },
            {
                "repo_id": "repo-1",
                "commit_sha": "b" * 40,
                "chain_seq": 2,
                "path": "posts/hi.md",
                "old_path": "posts/hello.md",
                "change_type": "R",
                "committed_at": at(5),
            },
            {
                "repo_id": "repo-1",
                "commit_sha": "b" * 40,
                "chain_seq": 2,
                "path": "posts/copy.md",
                "old_path": "posts/hello.md",
                "change_type": "C",
                "committed_at": at(5),
            },
        ],
        "git_refs": [
            {
                "repo_id": "repo-1",
                "ref_name": "refs/heads/main",
                "ref_type": "branch",
                "commit_sha": "b" * 40,
                "observed_at": at(6),
            },
        ],
        "git_lookup_cache": [
            {
                "repo_id": "repo-1",
                "path": "posts/hi.md",
                "at": at(7),
                "commit_sha": "b" * 40,
                "change_type": "R",
                "committed_at": at(5),
                "resolved_at": at(7),
                "last_accessed_at": at(8),
                "hits": 2,
            },
            {
                "repo_id": "repo-1",
                "path": "posts/none.md",
                "at": at(7),
                "commit_sha": None,
                "change_type": None,
                "committed_at": None,
                "resolved_at": at(7),
                "last_accessed_at": at(7),
                "hits": 0,
            },
        ],
        "git_directory_changes": [
            {
                "repo_id": "repo-1",
                "commit_sha": "a" * 40,
                "chain_seq": 1,
                "path": "posts",
                "change_type": "A",
                "committed_at": T0,
                "files": 1,
            },
            {
                "repo_id": "repo-1",
                "commit_sha": "b" * 40,
                "chain_seq": 2,
                "path": "posts",
                "change_type": "M",
                "committed_at": at(5),
                "files": 2,
            },
        ],
        "git_follow_sources": [
            {
                "repo_id": "repo-1",
                "commit_sha": "b" * 40,
                "path": "posts/hi.md",
                "change_type": "R",
                "source_path": "posts/hello.md",
            },
            {
                "repo_id": "repo-1",
                "commit_sha": "b" * 40,
                "path": "posts/copy.md",
                "change_type": "C",
                "source_path": "posts/hello.md",
            },
            {
                "repo_id": "repo-1",
                "commit_sha": "a" * 40,
                "path": "posts/hello.md",
                "change_type": "A",
                "source_path": None,
            },
        ],
        "asset_cache": [
            {
                "key": "sha256:" + "d" * 64,
                "kind": "social_card",
                "content_type": "image/png",
                "content": b"\x89PNG\r\n",
                "size_bytes": 6,
                "created_at": T0,
                "expires_at": at(60),
                "last_accessed_at": at(1),
                "hits": 1,
                "metadata": '{"w": 1200}',
            },
        ],
        "media_parts": [
            {"digest": "0f" * 32, "part": 0, "content": b"the first part of a file"},
            {"digest": "0f" * 32, "part": 1, "content": b"its last part"},
            {"digest": "e3" * 32, "part": 0, "content": b""},  # an empty file is one part
        ],
        "pseudonym_keys": [
            {
                "key_id": "0123456789abcdef",
                "secret": bytes(range(32)),
                "origin": "generated",
                "created_at": T0,
            },
        ],
    }


def valid_rows_at(table: Table) -> list[dict[str, Any]]:
    """The sample rows of ``table`` as an earlier schema declares it: its columns only, and
    only the rows its rules allowed then (a later schema may allow more)."""
    columns = set(table.column_names)
    rows = [{k: v for k, v in r.items() if k in columns} for r in valid_rows()[table.name]]
    return [r for r in rows if all(rule.holds(r) for rule in table.rules)]
