"""Kervan: a low-code, metadata-driven CRM engine."""

__version__ = "0.1.0"
