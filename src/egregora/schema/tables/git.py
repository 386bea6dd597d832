"""The git time machine: tracked repositories, per-path change history, refs and a lookup cache."""

from egregora.schema.model import TIMESTAMPTZ, ForeignKey, Index, Table, Unique, col
from egregora.schema.rules import RequiredWhen

CHANGE_TYPES = ("A", "M", "D", "R", "C", "T")
REF_TYPES = ("branch", "tag", "remote")

GIT_REPOS = Table(
    name="git_repos",
    description="A git repository whose history is synced, and how far the sync got.",
    columns=(
        col("repo_id", "!string", "Unique id of the repository."),
        col("root", "!string", "Local path or URL of the repository."),
        col("tracked_ref", "!string", "The ref whose first-parent history is synced."),
        col("last_synced_commit", "string", "Newest commit synced so far."),
        col("last_synced_at", TIMESTAMPTZ, "When the last sync finished."),
    ),
    primary_key=("repo_id",),
    uniques=(
        Unique(
            "git_repos_root_ref_key",
            ("root", "tracked_ref"),
            "one record per repo and ref",
            deferrable=True,
        ),
    ),
)

GIT_COMMITS = Table(
    name="git_commits",
    description="One path changed by one commit on the tracked ref's first-parent history.",
    columns=(
        col("repo_id", "!string", "The repository."),
        col("commit_sha", "!string", "The commit."),
        col(
            "chain_seq",
            "!int64",
            "Position of the commit on the first-parent chain, 1 for the root (git rev-list "
            "--first-parent --count); orders history where committer dates do not.",
            min_value=1,
        ),
        col("path", "!string", "Path after the change."),
        col("old_path", "string", "Path before a rename or copy."),
        col(
            "change_type",
            "!string",
            "Added, Modified, Deleted, Renamed, Copied, Type change.",
            one_of=CHANGE_TYPES,
        ),
        col("committed_at", f"!{TIMESTAMPTZ}", "Committer date."),
        col("authored_at", TIMESTAMPTZ, "Author date."),
        col("author_name", "string", "Author name."),
        col("author_email", "string", "Author e-mail."),
        col("additions", "int64", "Lines added (NULL for binary files).", min_value=0),
        col("deletions", "int64", "Lines deleted (NULL for binary files).", min_value=0),
    ),
    primary_key=("repo_id", "commit_sha", "path"),
    checks=(
        RequiredWhen(
            "git_commits_rename_has_old_path",
            "a rename names its old path",
            "change_type",
            "R",
            ("old_path",),
        ),
        RequiredWhen(
            "git_commits_copy_has_old_path",
            "a copy names its source path",
            "change_type",
            "C",
            ("old_path",),
        ),
    ),
    foreign_keys=(ForeignKey("git_commits_repo_id_fkey", "repo_id", "git_repos", "repo_id"),),
    indexes=(
        Index(
            "git_commits_path_time_idx",
            ("repo_id", "path", "committed_at"),
            "the changes of (repo, path) dated at or before T: WHERE repo_id = ? AND path = ? "
            "AND committed_at <= ? (a lookup keeps the one with the highest chain_seq)",
            dialects=("postgres",),
        ),
        Index(
            "git_commits_old_path_time_idx",
            ("repo_id", "old_path", "committed_at"),
            "the renames away from (repo, path) dated at or before T, the other half of a "
            "lookup: WHERE repo_id = ? AND old_path = ? AND committed_at <= ? (renames and "
            "copies only)",
            dialects=("postgres",),
            where="old_path IS NOT NULL",
        ),
    ),
)

GIT_REFS = Table(
    name="git_refs",
    description="Where each branch, tag or remote ref pointed when last observed.",
    columns=(
        col("repo_id", "!string", "The repository."),
        col("ref_name", "!string", "Full ref name, for example refs/heads/main."),
        col("ref_type", "!string", "Kind of ref.", one_of=REF_TYPES),
        col("commit_sha", "!string", "Commit the ref pointed to."),
        col("observed_at", f"!{TIMESTAMPTZ}", "When the ref was read."),
    ),
    primary_key=("repo_id", "ref_name"),
    foreign_keys=(ForeignKey("git_refs_repo_id_fkey", "repo_id", "git_repos", "repo_id"),),
)

GIT_LOOKUP_CACHE = Table(
    name="git_lookup_cache",
    description="Memoised answers to 'which commit of path was current at time T'.",
    columns=(
        col("repo_id", "!string", "The repository."),
        col("path", "!string", "The path asked about."),
        col("at", f"!{TIMESTAMPTZ}", "The time asked about."),
        col("commit_sha", "string", "The answer; NULL when no commit touched the path by then."),
        col(
            "change_type",
            "string",
            "What that commit did to the path (D: it no longer existed).",
            one_of=CHANGE_TYPES,
        ),
        col("committed_at", TIMESTAMPTZ, "That commit's committer date."),
        col("resolved_at", f"!{TIMESTAMPTZ}", "When the answer was computed."),
        col("last_accessed_at", f"!{TIMESTAMPTZ}", "When the answer was last read."),
        col("hits", "!int64", "How many times the answer was read.", min_value=0),
    ),
    primary_key=("repo_id", "path", "at"),
    foreign_keys=(ForeignKey("git_lookup_cache_repo_id_fkey", "repo_id", "git_repos", "repo_id"),),
)

DIRECTORY_CHANGE_TYPES = ("A", "M", "D")

GIT_DIRECTORY_CHANGES = Table(
    name="git_directory_changes",
    description=(
        "One directory whose files one commit of the tracked ref's first-parent history "
        "changed (a path in git_commits under it, or a rename's old path): what git log -- DIR "
        "matches, so a lookup of a directory is a lookup like a file's."
    ),
    columns=(
        col("repo_id", "!string", "The repository."),
        col("commit_sha", "!string", "The commit."),
        col(
            "chain_seq", "!int64", "Position of the commit on the first-parent chain.", min_value=1
        ),
        col("path", "!string", "The directory, without a trailing slash."),
        col(
            "change_type",
            "!string",
            "A: the directory's first file came; D: its last file went; M: otherwise.",
            one_of=DIRECTORY_CHANGE_TYPES,
        ),
        col("committed_at", f"!{TIMESTAMPTZ}", "Committer date."),
        col("files", "!int64", "Files under the directory after the commit.", min_value=0),
    ),
    primary_key=("repo_id", "commit_sha", "path"),
    foreign_keys=(
        ForeignKey("git_directory_changes_repo_id_fkey", "repo_id", "git_repos", "repo_id"),
    ),
    indexes=(
        Index(
            "git_directory_changes_path_time_idx",
            ("repo_id", "path", "committed_at"),
            "the directory side of a single lookup: WHERE repo_id = ? AND path = ? AND "
            "committed_at <= ?, as git_commits_path_time_idx for files",
            dialects=("postgres",),
        ),
    ),
)

FOLLOW_CHANGE_TYPES = ("A", "R", "C")

GIT_FOLLOW_SOURCES = Table(
    name="git_follow_sources",
    description=(
        "Where git log --follow continues a path's history at a commit that added it: the "
        "rename or copy source git pairs it with (looking at every file of the parent), or none. "
        "Asked of git the first time a followed lookup crosses that commit, then kept."
    ),
    columns=(
        col("repo_id", "!string", "The repository."),
        col("commit_sha", "!string", "The commit that added the path."),
        col("path", "!string", "The added path."),
        col(
            "change_type",
            "!string",
            "R or C: renamed or copied from source_path; A: a new file, followed no further.",
            one_of=FOLLOW_CHANGE_TYPES,
        ),
        col("source_path", "string", "The path git follows into; NULL when none."),
    ),
    primary_key=("repo_id", "commit_sha", "path"),
    checks=(
        RequiredWhen(
            "git_follow_sources_rename_has_source",
            "a followed rename names its source",
            "change_type",
            "R",
            ("source_path",),
        ),
        RequiredWhen(
            "git_follow_sources_copy_has_source",
            "a followed copy names its source",
            "change_type",
            "C",
            ("source_path",),
        ),
    ),
    foreign_keys=(
        ForeignKey("git_follow_sources_repo_id_fkey", "repo_id", "git_repos", "repo_id"),
    ),
)
