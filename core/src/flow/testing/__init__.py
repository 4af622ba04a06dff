"""flow.testing."""
