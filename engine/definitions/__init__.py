"""Metadata: YAML layers, JSON Schema, semantic checks and the resolved model."""
