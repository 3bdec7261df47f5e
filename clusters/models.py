"""Models of the clusters app (filled in by its issue)."""
