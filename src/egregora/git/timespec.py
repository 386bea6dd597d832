"""Points in time as git accepts them: ISO-8601 with an offset, or ``@`` and Unix seconds."""

from __future__ import annotations

from datetime import UTC, datetime

from egregora.errors import ConfigurationError


def parse_at(text: str) -> datetime:
    """``2024-05-01T12:00:00+02:00`` or ``@1714557600``; a time without an offset is refused."""
    raw = text.strip()
    if raw.startswith("@"):
        try:
            return datetime.fromtimestamp(float(raw[1:]), UTC)
        except (ValueError, OverflowError, OSError):
            raise ConfigurationError(
                f"{text!r} is not a Unix time; write @ followed by seconds, like @1714557600"
            ) from None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise ConfigurationError(
            f"{text!r} is not a time; write ISO-8601 with an offset "
            "(2024-05-01T12:00:00+02:00) or a Unix time (@1714557600)"
        ) from None
    if parsed.tzinfo is None:
        raise ConfigurationError(
            f"{text!r} has no UTC offset, so it names no single instant; add one, like +00:00"
        )
    return parsed.astimezone(UTC)


def as_utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ConfigurationError(
            f"{at!r} has no time zone, so it names no single instant; pass an aware datetime"
        )
    return at.astimezone(UTC)
