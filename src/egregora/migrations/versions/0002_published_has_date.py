"""A published document carries the publication date the site shows.

DuckDB cannot add a CHECK to an existing table, so this rebuilds `documents` together with
`annotations`, which references it, keeping every row.
"""

from egregora.migrations.model import AddRule

ID = "0002"
DESCRIPTION = "a published document has a date"
OPERATIONS = (AddRule("documents", "documents_published_has_date"),)
