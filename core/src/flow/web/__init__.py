"""flow.web."""
