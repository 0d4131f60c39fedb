"""Execution: the job a worker runs, the pools that run it (local or Dask), adoption."""
