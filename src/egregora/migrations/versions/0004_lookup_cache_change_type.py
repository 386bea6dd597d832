"""git_lookup_cache keeps the change type with the commit, so a cached answer says whether
the path existed then. Older cached answers get NULL and are recomputed on their next use.
"""

from egregora.migrations.model import AddColumn

ID = "0004"
DESCRIPTION = "git lookup cache keeps the change type"
OPERATIONS = (AddColumn("git_lookup_cache", "change_type"),)
