"""Pipelines and workflows: guarded stage transitions, actions, conversions, lifecycle."""
