"""flow.secrets."""
