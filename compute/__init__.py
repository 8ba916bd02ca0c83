"""shiftlake's compute layer: models, sampling, token metrics, verifiers, summaries and the toy world.

Pure Python, torch and polars. Knows nothing about Dagster; every function here takes tensors or frames
and returns frames, so it can be tested and reused without an orchestrator.
"""
