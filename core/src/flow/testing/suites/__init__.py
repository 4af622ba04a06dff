"""The conformance suites: one class per kind of component, subclassed by plugin authors."""
