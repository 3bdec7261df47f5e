"""Models of the rollouts app (filled in by its issue)."""
