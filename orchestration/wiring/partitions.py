"""The one partitioning of the study: a dynamic partition per RL checkpoint."""

import dagster as dg

checkpoints_partitions = dg.DynamicPartitionsDefinition(name="checkpoints")

BASE_PARTITION = "checkpoint=base"
"""Where the base model's own tables (computed once, reused by every checkpoint) live in the lake."""
