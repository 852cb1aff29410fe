"""Ingest: one module per source kind, each loading into the warehouse exactly once."""
