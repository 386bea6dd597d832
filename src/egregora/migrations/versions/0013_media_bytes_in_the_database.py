"""Media bytes can live in the database: ``media_parts`` holds each file cut into 4 MiB parts,
keyed by its SHA-256. Several machines share a PostgreSQL database and no folder, so there a
site is written from the database alone. The table is created on every engine (one catalog);
DuckDB keeps its media files beside the database file as before, and the table stays empty.
"""

from egregora.migrations.model import CreateTable

ID = "0013"
DESCRIPTION = "media bytes in the database, in parts"
OPERATIONS = (CreateTable("media_parts"),)
