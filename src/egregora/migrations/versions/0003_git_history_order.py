"""git_commits records each commit's position on the first-parent chain.

Committer dates are not monotonic along history (rebases, clock skew), so "the latest change
at or before T" must follow the chain, not the dates. Rows synced before this migration get
positions estimated from committer dates; `egregora git sync --full` recomputes them from git.
"""

from egregora.migrations.model import AddColumns

ID = "0003"
DESCRIPTION = "git history records first-parent order"
OPERATIONS = (
    AddColumns(
        "git_commits",
        ("chain_seq",),
        backfill={
            "chain_seq": "DENSE_RANK() OVER "
            "(PARTITION BY repo_id ORDER BY committed_at, commit_sha)"
        },
    ),
)
