"""flow.authoring."""
