"""flow.scheduling."""
