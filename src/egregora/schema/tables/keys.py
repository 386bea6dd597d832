"""The secret that keys pseudonyms: one row, the key the database's pseudonyms are made with."""

from egregora.schema.model import TIMESTAMPTZ, Table, col

KEY_ORIGINS = ("generated", "given")

PSEUDONYM_KEYS = Table(
    name="pseudonym_keys",
    description="The secret key of the database's pseudonyms (one row: the current key).",
    columns=(
        col("key_id", "!string", "Fingerprint of the key; tells keys apart without revealing one."),
        col("secret", "!binary", "The key itself: whoever holds it can test guessed names."),
        col("origin", "!string", "Made at random here, or given by the user.", one_of=KEY_ORIGINS),
        col("created_at", f"!{TIMESTAMPTZ}", "When the database started using the key."),
    ),
    primary_key=("key_id",),
)
