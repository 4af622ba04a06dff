"""The ``flow`` command line (click)."""
