"""Executors run the per-image work: ``local`` (threads in this process); Dask lives apart."""
