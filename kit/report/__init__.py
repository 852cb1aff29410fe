"""Documents: results (JSON) → document models → Markdown (Jinja) and JSON (validated by schemas)."""
