"""Benchmark sections split out of :mod:`dposer.bench` by concern (run through ``dposer bench NAME``)."""
