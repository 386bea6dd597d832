"""Directory rows: which commits changed something under a directory, and how many files it held.

``git log -- DIR`` matches a commit when any file under DIR changed (a rename's old path
included). Storing one row per (commit, directory) makes a directory's lookup the same
indexed lookup as a file's, in single and batch answers alike. Each row also carries the
number of files under the directory after the commit, so the answer says whether the
directory still existed (its last file deleted: ``D``).

Computed with Arrow from ``git_commits``-shaped rows, oldest to newest along the chain,
starting from the counts the store holds at the base of the rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from egregora.storage.store import Storage

_ADDS = ("A", "C", "R")  # the path is new after the commit (a rename's new name)


def directories_of(rows: pa.Table) -> pa.Table:
    """Per (commit, directory) touched by ``rows``: the change in its number of files.

    Columns: chain_seq, commit_sha, committed_at, path (the directory), delta.
    """
    kind = rows["change_type"]
    delta = pc.if_else(
        pc.is_in(kind, pa.array(_ADDS)),
        pa.scalar(1, pa.int64()),
        pc.if_else(pc.equal(kind, "D"), pa.scalar(-1, pa.int64()), pa.scalar(0, pa.int64())),
    )
    events = rows.select(["chain_seq", "commit_sha", "committed_at", "path"]).append_column(
        "delta", delta
    )
    renamed = rows.filter(pc.equal(kind, "R"))
    gone = pa.table(
        {
            "chain_seq": renamed["chain_seq"],
            "commit_sha": renamed["commit_sha"],
            "committed_at": renamed["committed_at"],
            "path": renamed["old_path"],
            "delta": pa.array([-1] * renamed.num_rows, pa.int64()),
        }
    )
    events = pa.concat_tables([events, gone.cast(events.schema)])
    parts = pc.split_pattern(events["path"], "/")
    depth = pc.list_value_length(parts)
    levels = []
    deepest = pc.max(depth).as_py() or 0
    for level in range(1, deepest):
        under = pc.greater(depth, level)
        kept = events.filter(under)
        prefix = pc.binary_join(pc.list_slice(parts.filter(under), 0, level), "/")
        levels.append(kept.set_column(kept.schema.get_field_index("path"), "path", prefix))
    if not levels:
        return events.slice(0, 0)
    every = pa.concat_tables(levels)
    grouped = every.group_by(["chain_seq", "path"]).aggregate(
        [("delta", "sum"), ("commit_sha", "min"), ("committed_at", "min")]
    )
    return grouped.rename_columns(
        {"delta_sum": "delta", "commit_sha_min": "commit_sha", "committed_at_min": "committed_at"}
    )


def directory_rows(repo_id: str, rows: pa.Table, base: dict[str, int]) -> pa.Table:
    """``git_directory_changes`` rows for ``rows`` (the commits above the base), given the
    number of files each directory held at the base (absent: none)."""
    touched = directories_of(rows).sort_by([("path", "ascending"), ("chain_seq", "ascending")])
    if touched.num_rows == 0:
        return _empty()
    paths = touched["path"]
    delta = touched["delta"]
    running = pc.cumulative_sum(delta)
    previous = pa.concat_arrays([pa.array([None], pa.string()), paths.combine_chunks()[:-1]])
    starts = pc.fill_null(pc.not_equal(paths, previous), True)
    group = pc.subtract(pc.cumulative_sum(pc.cast(starts, pa.int64())), 1)
    before_group = pc.subtract(running, delta).filter(starts)
    within = pc.subtract(running, pc.take(before_group, group))
    at_base = pa.array([base.get(p, 0) for p in paths.to_pylist()], pa.int64())
    after = pc.add(at_base, within)
    before = pc.subtract(after, delta)
    change = pc.if_else(
        pc.equal(after, 0),
        pa.scalar("D"),
        pc.if_else(pc.equal(before, 0), pa.scalar("A"), pa.scalar("M")),
    )
    table = pa.table(
        {
            "repo_id": pa.array([repo_id] * touched.num_rows, pa.string()),
            "commit_sha": touched["commit_sha"],
            "chain_seq": touched["chain_seq"],
            "path": paths,
            "change_type": change,
            "committed_at": touched["committed_at"],
            "files": after,
        }
    )
    # A directory neither there before nor after is not a change. A directory may share its
    # name with a file the same commit deletes or adds (a file replaced by a directory of its
    # name): both rows are kept, and a lookup of the name prefers the one not a deletion.
    return table.filter(pc.or_(pc.greater(after, 0), pc.greater(before, 0)))


def _empty() -> pa.Table:
    return pa.table(
        {
            "repo_id": pa.array([], pa.string()),
            "commit_sha": pa.array([], pa.string()),
            "chain_seq": pa.array([], pa.int64()),
            "path": pa.array([], pa.string()),
            "change_type": pa.array([], pa.string()),
            "committed_at": pa.array([], pa.timestamp("us", tz="UTC")),
            "files": pa.array([], pa.int64()),
        }
    )


def stored_counts(store: Storage, repo_id: str, dirs: Iterable[str], upto: int) -> dict[str, int]:
    """The files each of ``dirs`` held after the stored commit at ``upto`` (absent: none)."""
    wanted = sorted(set(dirs))
    if not wanted:
        return {}
    t = store.table("git_directory_changes")
    mine = t.filter(t.repo_id == repo_id, t.chain_seq <= upto, t.path.isin(wanted))
    latest = mine.group_by("path").aggregate(seq=mine.chain_seq.max())
    found = latest.join(mine, [latest.path == mine.path, latest.seq == mine.chain_seq])
    out = store.to_pyarrow(found.select(latest.path, mine.files))
    return dict(zip(out["path"].to_pylist(), out["files"].to_pylist(), strict=True))
