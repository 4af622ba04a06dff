"""flow.execution."""
