"""Training-side helpers (not needed for inference)."""
