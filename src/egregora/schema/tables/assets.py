"""The asset cache: generated binary assets such as social cards, addressed by content."""

from egregora.schema.model import TIMESTAMPTZ, Index, Table, col
from egregora.schema.rules import Ordered

ASSET_CACHE = Table(
    name="asset_cache",
    description="A cached binary asset keyed by its content address, with expiry and LRU data.",
    columns=(
        col("key", "!string", "Content address of the asset (a hash of its inputs)."),
        col("kind", "!string", "What the asset is, for example social_card."),
        col("content_type", "!string", "MIME type of the content."),
        col("content", "!binary", "The asset's bytes."),
        col("size_bytes", "!int64", "Length of content in bytes.", min_value=0),
        col("created_at", f"!{TIMESTAMPTZ}", "When the asset was stored."),
        col("expires_at", TIMESTAMPTZ, "When the asset may be dropped; NULL keeps it."),
        col("last_accessed_at", f"!{TIMESTAMPTZ}", "When the asset was last read."),
        col("hits", "!int64", "How many times the asset was read.", min_value=0),
        col("source_url", "string", "Where the asset's input came from."),
        col("etag", "string", "HTTP entity tag of the source, for revalidation."),
        col("metadata", "json", "Free-form attributes (dimensions, generator version)."),
    ),
    primary_key=("key",),
    checks=(
        Ordered(
            "asset_cache_expires_after_created",
            "expires_at is not before created_at",
            "created_at",
            "<=",
            "expires_at",
        ),
    ),
    indexes=(
        Index(
            "asset_cache_expires_at_idx",
            ("expires_at",),
            "the expiry sweep: WHERE expires_at <= now()",
        ),
        Index(
            "asset_cache_last_accessed_idx",
            ("last_accessed_at",),
            "least-recently-used eviction: ORDER BY last_accessed_at LIMIT n",
            dialects=("postgres",),
        ),
    ),
)
