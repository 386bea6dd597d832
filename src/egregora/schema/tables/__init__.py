"""Table declarations, one module per area of the data layer."""
