"""The one pipeline every run goes through (placeholder, filled in the next step)."""
