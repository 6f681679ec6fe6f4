"""Benchmark sections split out of :mod:`dposer.eval.bench` by concern (run through ``dposer bench NAME``)."""
