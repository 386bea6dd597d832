"""A unique key may move between rows inside one transaction: an upsert that swaps two slugs
(or renumbers a thread's messages) is checked when it commits. PostgreSQL checks a plain UNIQUE
row by row, so such an upsert was refused there while DuckDB took it; its unique constraints
become DEFERRABLE (still checked at once unless a transaction defers them, which the upsert
does). DuckDB has no deferrable constraint and nothing changes there.
"""

from egregora.migrations.model import DeferUnique

ID = "0011"
DESCRIPTION = "unique keys may move between rows within one upsert"
OPERATIONS = (
    DeferUnique("git_repos", "git_repos_root_ref_key"),
    DeferUnique("documents", "documents_doc_type_slug_key"),
    DeferUnique("messages", "messages_thread_seq_key"),
)
