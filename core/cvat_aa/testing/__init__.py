"""Test support: a CVAT-compatible server and pytest fixtures."""
