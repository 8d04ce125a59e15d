"""Shared helpers for the test suites (real media, fake peers)."""
