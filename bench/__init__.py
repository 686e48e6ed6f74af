"""The scale benchmark: a million leads measured against the raw-SQL floor (bench.run)."""
