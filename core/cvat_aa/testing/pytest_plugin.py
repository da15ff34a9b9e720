"""pytest fixtures for cvat-aa and its plugin authors (registered through pytest11)."""
