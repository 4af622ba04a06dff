"""flow-celery: the ``celery`` executor, its worker and its CLI (``flow celery ...``)."""

__version__ = "0.1.0"
