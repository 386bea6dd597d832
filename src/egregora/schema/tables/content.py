"""Content tables: the unified documents, the ingested messages, and annotations on either."""

from egregora.schema.model import (
    TIMESTAMPTZ,
    ForeignKey,
    Index,
    Table,
    Unique,
    col,
    foreign_key_index,
)
from egregora.schema.rules import ExactlyOne, NullExactlyWhen, Ordered, RequiredWhen

DOC_TYPES = ("post", "profile", "journal", "media")
POST_STATUSES = ("draft", "published", "archived")
MEDIA_TYPES = ("image", "video", "audio", "document")
MESSAGE_KINDS = ("text", "media", "system")

DOCUMENTS = Table(
    name="documents",
    description="Every generated document (post, profile, journal, media), told apart by doc_type.",
    columns=(
        col("id", "!string", "Stable document id."),
        col("doc_type", "!string", "Kind of document.", one_of=DOC_TYPES),
        col("created_at", f"!{TIMESTAMPTZ}", "When the document was created."),
        col("updated_at", TIMESTAMPTZ, "When the document last changed."),
        col("title", "string", "Title (posts, profiles, journals)."),
        col("slug", "string", "URL slug, unique within its doc_type (posts)."),
        col("status", "string", "Publication state (posts).", one_of=POST_STATUSES),
        col("content", "string", "Body text in Markdown."),
        col("summary", "string", "Short summary of the content."),
        col("date", "date", "Publication date shown on the site."),
        col("authors", "array<string>", "Author ids (profile subject uuids)."),
        col("tags", "array<string>", "Tags."),
        col("subject_uuid", "string", "The person a profile describes (profiles)."),
        col("filename", "string", "File name of a media item (media)."),
        col("mime_type", "string", "MIME type of a media item."),
        col("media_type", "string", "Kind of media (media).", one_of=MEDIA_TYPES),
        col("window_start", TIMESTAMPTZ, "Start of the message window a journal covers."),
        col("window_end", TIMESTAMPTZ, "End (exclusive) of the message window a journal covers."),
        col("window_signature", "string", "Hash identifying a window's input (journals)."),
        col("source_checksum", "string", "Checksum of the input the document was made from."),
        col("extensions", "json", "Type-specific extra fields."),
        col("created_by_run", "string", "The run that created the document."),
    ),
    primary_key=("id",),
    uniques=(
        Unique(
            "documents_doc_type_slug_key",
            ("doc_type", "slug"),
            "a slug is unique per type",
            deferrable=True,
        ),
    ),
    checks=(
        RequiredWhen(
            "documents_post_required",
            "a post has a title, slug and status",
            "doc_type",
            "post",
            ("title", "slug", "status"),
        ),
        RequiredWhen(
            "documents_profile_required",
            "a profile has a title and subject_uuid",
            "doc_type",
            "profile",
            ("title", "subject_uuid"),
        ),
        RequiredWhen(
            "documents_journal_required",
            "a journal has a title, window_signature, window_start and window_end",
            "doc_type",
            "journal",
            ("title", "window_signature", "window_start", "window_end"),
        ),
        RequiredWhen(
            "documents_media_required",
            "a media document has a filename and media_type",
            "doc_type",
            "media",
            ("filename", "media_type"),
        ),
        RequiredWhen(
            "documents_published_has_date",
            "a published document has a date",
            "status",
            "published",
            ("date",),
        ),
        Ordered(
            "documents_window_order",
            "window_start is before window_end",
            "window_start",
            "<",
            "window_end",
        ),
        Ordered(
            "documents_updated_after_created",
            "updated_at is not before created_at",
            "created_at",
            "<=",
            "updated_at",
        ),
    ),
    foreign_keys=(ForeignKey("documents_created_by_run_fkey", "created_by_run", "runs", "run_id"),),
    indexes=(
        Index(
            "documents_subject_uuid_idx",
            ("subject_uuid",),
            "the profile of a person: WHERE subject_uuid = ?",
        ),
        Index(
            "documents_filename_idx",
            ("filename",),
            "a media document by file name: WHERE filename = ?",
        ),
        foreign_key_index("documents", "created_by_run"),
    ),
)

MESSAGES = Table(
    name="messages",
    description="One chat event from an export; a deterministic id makes re-ingesting a no-op.",
    columns=(
        col("event_id", "!string", "Deterministic id derived from source, thread and content."),
        col("source", "!string", "Where the message came from (for example whatsapp)."),
        col("thread_id", "!string", "The chat or group the message belongs to."),
        col("seq", "!int64", "Position of the message within its thread.", min_value=0),
        col("ts", f"!{TIMESTAMPTZ}", "When the message was sent."),
        col("kind", "!string", "Text, media, or a system notice.", one_of=MESSAGE_KINDS),
        col("author_raw", "string", "Author as written in the export; NULL for system notices."),
        col("author_uuid", "string", "Pseudonymous author id; NULL for system notices."),
        col("text", "string", "Message text."),
        col("media_filename", "string", "Attached file name (media messages)."),
        col("media_type", "string", "Kind of the attached media.", one_of=MEDIA_TYPES),
        col(
            "media_omitted",
            "!boolean",
            "The export left the media message's file out (media_filename is NULL).",
        ),
        col("attrs", "json", "Source-specific attributes."),
        col("ingested_at", TIMESTAMPTZ, "When the message was ingested."),
        col("created_by_run", "string", "The run that ingested the message."),
    ),
    primary_key=("event_id",),
    uniques=(
        Unique(
            "messages_thread_seq_key",
            ("source", "thread_id", "seq"),
            "one message per position in a thread",
            deferrable=True,
        ),
    ),
    checks=(
        NullExactlyWhen(
            "messages_author_iff_not_system",
            "author_raw and author_uuid are NULL exactly when kind is system",
            "kind",
            "system",
            ("author_raw", "author_uuid"),
        ),
        RequiredWhen(
            "messages_media_has_filename",
            "a media message names its file, unless the export left it out",
            "kind",
            "media",
            ("media_filename",),
            unless="media_omitted",
        ),
    ),
    foreign_keys=(ForeignKey("messages_created_by_run_fkey", "created_by_run", "runs", "run_id"),),
    indexes=(foreign_key_index("messages", "created_by_run"),),
)

ANNOTATIONS = Table(
    name="annotations",
    description="A note attached to exactly one message or one document.",
    columns=(
        col("annotation_id", "!string", "Unique id of the annotation."),
        col("message_id", "string", "The annotated message, when the parent is a message."),
        col("document_id", "string", "The annotated document, when the parent is a document."),
        col("author", "!string", "Who wrote the annotation."),
        col("content", "!string", "The annotation text."),
        col("created_at", f"!{TIMESTAMPTZ}", "When the annotation was written."),
    ),
    primary_key=("annotation_id",),
    checks=(
        ExactlyOne(
            "annotations_one_parent",
            "exactly one of message_id and document_id is set",
            ("message_id", "document_id"),
        ),
    ),
    foreign_keys=(
        ForeignKey("annotations_message_id_fkey", "message_id", "messages", "event_id"),
        ForeignKey("annotations_document_id_fkey", "document_id", "documents", "id"),
    ),
    indexes=(
        foreign_key_index("annotations", "message_id"),
        foreign_key_index("annotations", "document_id"),
    ),
)
