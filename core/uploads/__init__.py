"""Uploaded files: their records, and what their bytes are."""
