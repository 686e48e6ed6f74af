"""Storage: database engines, tables built from metadata, schema sync."""
