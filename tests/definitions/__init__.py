"""Tests of the SidecarSet definitions (issue 3 §2-§5): models, services, API, admin, CLI, schema."""
