"""Run and task records: what the pipeline did, and the work queue it draws from."""

from egregora.schema.model import TIMESTAMPTZ, ForeignKey, Index, Table, col, foreign_key_index
from egregora.schema.rules import Ordered, RequiredWhen

RUN_STATUSES = ("running", "succeeded", "failed", "cancelled")
TASK_STATUSES = ("pending", "running", "succeeded", "failed", "superseded")

RUNS = Table(
    name="runs",
    description="One execution of a pipeline stage, with its inputs, outcome and counts.",
    columns=(
        col("run_id", "!string", "Unique id of the run."),
        col("parent_run_id", "string", "The run that started this one, if any."),
        col("stage", "!string", "Pipeline stage the run executed (for example ingest, write)."),
        col("status", "!string", "Lifecycle state of the run.", one_of=RUN_STATUSES),
        col("config_hash", "string", "Hash of the configuration the run used."),
        col("code_version", "string", "Version of the code that ran."),
        col("input_checksum", "string", "Checksum of the run's input."),
        col("started_at", f"!{TIMESTAMPTZ}", "When the run started."),
        col("finished_at", TIMESTAMPTZ, "When the run ended; NULL while it runs."),
        col("rows_in", "int64", "Rows the run read.", min_value=0),
        col("rows_out", "int64", "Rows the run wrote.", min_value=0),
        col("error", "string", "Why the run failed."),
        col("attrs", "json", "Free-form run attributes."),
        col("host", "string", "Host name of the process that runs it."),
        col("pid", "int64", "Process id of the process that runs it.", min_value=1),
        col("heartbeat_at", TIMESTAMPTZ, "When the running process last said it is alive."),
    ),
    primary_key=("run_id",),
    checks=(
        Ordered(
            "runs_finished_after_start",
            "finished_at is not before started_at",
            "started_at",
            "<=",
            "finished_at",
        ),
        RequiredWhen(
            "runs_failed_has_error", "a failed run says why", "status", "failed", ("error",)
        ),
    ),
    foreign_keys=(ForeignKey("runs_parent_run_id_fkey", "parent_run_id", "runs", "run_id"),),
    indexes=(foreign_key_index("runs", "parent_run_id"),),
)

TASKS = Table(
    name="tasks",
    description="Queued work, leased by one worker at a time; a dedupe key queued once at a time.",
    columns=(
        col("task_id", "!string", "Unique id of the task."),
        col("run_id", "string", "The run that enqueued the task."),
        col("task_type", "!string", "What kind of work the task is."),
        col("status", "!string", "Lifecycle state of the task.", one_of=TASK_STATUSES),
        col("dedupe_key", "string", "Enqueuing a key already pending or running is a no-op."),
        col("payload", "json", "Arguments of the task."),
        col("priority", "!int64", "Larger runs earlier among tasks of one type."),
        col("attempts", "!int64", "How many times the task was started.", min_value=0),
        col("max_attempts", "!int64", "How many starts are allowed.", min_value=1),
        col("lease_owner", "string", "Worker holding the lease while the task runs."),
        col("lease_expires_at", TIMESTAMPTZ, "When the current lease lapses."),
        col("created_at", f"!{TIMESTAMPTZ}", "When the task was enqueued."),
        col("updated_at", TIMESTAMPTZ, "When the task last changed."),
        col("last_error", "string", "Error of the last failed attempt."),
        col("available_at", f"!{TIMESTAMPTZ}", "Not claimed before this time (retry backoff)."),
    ),
    primary_key=("task_id",),
    checks=(
        Ordered(
            "tasks_attempts_within_max",
            "attempts never exceed max_attempts",
            "attempts",
            "<=",
            "max_attempts",
        ),
        RequiredWhen(
            "tasks_running_has_lease",
            "a running task has a lease owner and expiry",
            "status",
            "running",
            ("lease_owner", "lease_expires_at"),
        ),
    ),
    foreign_keys=(ForeignKey("tasks_run_id_fkey", "run_id", "runs", "run_id"),),
    indexes=(
        Index(
            "tasks_claim_idx",
            ("priority", "created_at", "task_id"),
            "the claim's pick: WHERE (status = 'pending' AND available_at <= ?) OR (status = "
            "'running' AND lease_expires_at <= ?) ORDER BY priority DESC, created_at, task_id "
            "LIMIT 1, read in order from the first claimable task",
            dialects=("postgres",),
            descending=("priority",),
            where="status IN ('pending', 'running')",
        ),
        foreign_key_index("tasks", "run_id"),
        Index(
            "tasks_dedupe_key_idx",
            ("dedupe_key",),
            "enqueue skips keys already queued: WHERE dedupe_key IN (...) AND status IN "
            "('pending', 'running')",
        ),
    ),
)
