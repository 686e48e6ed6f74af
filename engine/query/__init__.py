"""Querying records: the condition language, filters, sorting and pagination."""
