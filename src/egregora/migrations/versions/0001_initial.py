"""Create the schema as it stood at the first release."""

from egregora.migrations.model import CreateCatalog

ID = "0001"
DESCRIPTION = "initial schema: every table, key, rule, foreign key and index"
OPERATIONS = (CreateCatalog(),)
