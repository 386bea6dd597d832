"""Migration modules, one per schema version: ``NNNN_name.py`` with ID, DESCRIPTION, OPERATIONS."""
