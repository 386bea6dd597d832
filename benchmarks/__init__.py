"""Benchmarks of the data layer: each case is timed against a baseline in the same process run.

Run them with ``python -m benchmarks`` (or ``make bench``); see ``benchmarks/README.md``.
These are measurements, not tests: nothing here asserts a time.
"""
