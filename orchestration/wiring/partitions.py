"""The one partitioning of the study: a dynamic partition per RL checkpoint (its lake folder:
`compute.lake.checkpoint_partition`; the base model's own tables: `compute.lake.BASE_PARTITION`)."""

import dagster as dg

checkpoints_partitions = dg.DynamicPartitionsDefinition(name="checkpoints")
