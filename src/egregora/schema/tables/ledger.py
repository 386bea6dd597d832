"""The migration ledger: which migrations a database has applied, when and by whom."""

from egregora.schema.model import TIMESTAMPTZ, Table, col

SCHEMA_MIGRATIONS = Table(
    name="schema_migrations",
    description="One row per applied migration; a checksum catches edited history.",
    columns=(
        col("id", "!string", "Ordered migration id, for example 0001."),
        col("description", "!string", "What the migration does."),
        col("checksum", "!string", "SHA-256 of the migration's content when it was applied."),
        col("applied_at", f"!{TIMESTAMPTZ}", "When the migration was applied."),
        col("duration_ms", "!int64", "How long it took.", min_value=0),
        col("applied_by_host", "!string", "Host name of the process that applied it."),
        col("applied_by_pid", "!int64", "Process id that applied it."),
        col("egregora_version", "!string", "Version of egregora that applied it."),
    ),
    primary_key=("id",),
)
