"""Demo workspace (placeholder)."""
