"""git_lookup_cache keeps the whole answer: the change type (so a cached answer says whether
the path existed then) and the commit's date. Older cached rows get NULL in both.
"""

from egregora.migrations.model import AddColumns

ID = "0004"
DESCRIPTION = "git lookup cache keeps the whole answer"
OPERATIONS = (AddColumns("git_lookup_cache", ("change_type", "committed_at")),)
