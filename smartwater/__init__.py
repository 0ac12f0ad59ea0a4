"""The CLI (``smartwater``) and the all-in-one runner."""
