"""Business documents: money totals of lined documents, printing to PDF, sending by e-mail."""
