"""Directories and followed renames for the git time machine: ``git_directory_changes`` lets a
lookup of a directory answer as ``git log -- DIR`` does (any file under it), and
``git_follow_sources`` keeps git's own rename and copy pairing for ``--follow``. A repository
synced before this migration gains its directory rows on its next ``egregora git sync --full``.
"""

from egregora.migrations.model import CreateTable

ID = "0014"
DESCRIPTION = "git directory changes and followed rename sources"
OPERATIONS = (CreateTable("git_directory_changes"), CreateTable("git_follow_sources"))
