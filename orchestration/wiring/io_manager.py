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


RERUN = "rerun"  # metadata: did this write change the partition (and what reads it)


def readers_of(specs) -> dict[str, list[str]]:
    """Asset -> the assets that read it, each marked `[]` when partitioned per checkpoint (from the code
    location's asset specs; the IO manager names them when a write changes what they read)."""
    out: dict[str, list[str]] = {}
    for spec in sorted(specs, key=lambda s: s.key.to_user_string()):
        for dep in spec.deps:
            name = spec.key.to_user_string() + (" []" if spec.partitions_def is not None else "")
            out.setdefault(dep.asset_key.to_user_string(), []).append(name)
    return out


def _location(context: dg.OutputContext | dg.InputContext, metadata: dict, partitioned: bool) -> tuple[str, str]:
    partition = checkpoint_partition(context.asset_partition_key) if partitioned else metadata.get(PARTITION, "")
    return table_of(context.asset_key, metadata), partition


def _comparable(before: str | None, digest: str) -> bool:
    """Both digests from the same polars version (its row hashes differ between versions)."""
    return before is not None and before.rsplit(" ", 1)[0] == digest.rsplit(" ", 1)[0]


class LakeIOManager(dg.ConfigurableIOManager):
    lake_url: str
    readers: dict[str, list[str]] = {}  # `readers_of(the code location's asset specs)`

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        table, partition = _location(context, context.definition_metadata or {}, context.has_asset_partitions)
        version = context.asset_spec.code_version or "unversioned"
        frame = obj.with_columns(pl.lit(version).alias("code_version"))
        digest = lake.rows_digest(obj)
        rerun = self._rerun(context, table, partition, obj, digest)
        path = lake.write_partition(self.lake_url, table, partition, frame, digest)
        context.add_output_metadata({"path": dg.MetadataValue.path(path), "dagster/row_count": frame.height,
                                     "table": table, RERUN: rerun})

    def _rerun(self, context: dg.OutputContext, table: str, partition: str, frame: pl.DataFrame, digest: str) -> str:
        """What this write changes, for the materialisation's metadata: the same rows as the partition it
        replaces (what reads it stays fresh), or other rows, and which partitions read them. Told from the
        digest in the old file's footer; the old rows are read back only when it has none from this polars."""
        try:
            before = lake.stored_digest(self.lake_url, table, partition)
            same = before == digest if _comparable(before, digest) else lake.read_partition(
                self.lake_url, table, partition).drop("code_version", strict=False).equals(frame)
        except FileNotFoundError:
            return "first write of this partition"
        if same:
            return "unchanged: the same rows as before, so what reads them stays fresh"
        asset = context.asset_key.to_user_string()
        if asset not in self.readers:
            return "changed: other rows than before; what reads them is stale until it runs again"
        where = f"[{context.asset_partition_key}]" if context.has_asset_partitions else "[every checkpoint]"
        readers = ", ".join(r.replace("[]", where) for r in self.readers[asset])
        return f"changed: other rows than before; stale until they run again: {readers}"

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
