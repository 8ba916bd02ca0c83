"""Benchmarks of the whole product (`shiftlake bench`); `compute.benchmark` measures the engine alone."""
