"""SidecarSet definitions (filled in by the definitions issue)."""
