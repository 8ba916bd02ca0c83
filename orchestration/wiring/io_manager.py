"""The lake IO manager: every asset's polars frame goes to `<lake>/<table>/<partition>/data.parquet`.

The table is the asset's name unless its definition metadata says `lake/table`; the partition is
`checkpoint=<key>` for checkpoint-partitioned assets, else the asset's `lake/partition` metadata
(empty: the table has no partition folder). Writes go through `compute.lake`, atomically. Its `lake_url`
is the one lake URL of a run: assets that read or write the lake themselves (model store, report) take it
from here.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from compute import lake
from compute.lake import checkpoint_partition
from orchestration.wiring.names import PARTITION, TABLE


def table_of(asset_key: dg.AssetKey, metadata: dict) -> str:
    """The lake table an asset writes: its `lake/table` definition metadata, else its name."""
    return metadata.get(TABLE) or asset_key.path[-1]


def _location(context: dg.OutputContext | dg.InputContext, metadata: dict, partitioned: bool) -> tuple[str, str]:
    partition = checkpoint_partition(context.asset_partition_key) if partitioned else metadata.get(PARTITION, "")
    return table_of(context.asset_key, metadata), partition


class LakeIOManager(dg.ConfigurableIOManager):
    lake_url: str

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        table, partition = _location(context, context.definition_metadata or {}, context.has_asset_partitions)
        version = context.asset_spec.code_version or "unversioned"
        frame = obj.with_columns(pl.lit(version).alias("code_version"))
        path = lake.write_partition(self.lake_url, table, partition, frame)
        context.add_output_metadata({"path": dg.MetadataValue.path(path), "dagster/row_count": frame.height,
                                     "table": table})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        upstream = context.upstream_output
        metadata = upstream.definition_metadata or {}
        if context.has_asset_partitions and len(keys := context.asset_partition_keys) > 1:
            # an unpartitioned asset reading every checkpoint: the partitions written so far
            table = table_of(context.asset_key, metadata)
            written = set(lake.list_partitions(self.lake_url, table))
            parts = [lake.read_partition(self.lake_url, table, checkpoint_partition(k)) for k in keys
                     if checkpoint_partition(k) in written]
            if not parts:
                raise FileNotFoundError(f"no partition of {table} in {self.lake_url} yet")
            return pl.concat(parts, how="diagonal_relaxed").drop("code_version", strict=False)
        table, partition = _location(context, metadata, context.has_asset_partitions)
        return lake.read_partition(self.lake_url, table, partition).drop("code_version", strict=False)
