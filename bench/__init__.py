"""The benchmark of chatgate: ``python -m bench`` (see README.md here)."""
