"""Dagster glue: definitions, resources, the lake IO manager, partitions, jobs and the CLI."""
