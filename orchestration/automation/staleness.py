"""Which checkpoint partitions are stale, read from the Dagster event log with public APIs.

An asset partition is stale when
  - its latest materialisation ran another code version than the asset has now;
  - it is a model row (`base_model`, `checkpoints`) and the folder's content hash is no longer the data
    version it recorded (changed weights; the hash is recomputed only when the folder's listing of names,
    sizes and mtimes changed);
  - it recorded a setting as metadata (one of `configured`, e.g. `prompt_template`) whose value is no longer
    the configured one;
  - an input's latest data version differs from the one it read (the input was recomputed to other data);
    for an asset across checkpoints (`trend`), each registered partition of a per-checkpoint input is
    compared with the data version it had when the asset was written;
  - or an input is itself stale.
Missing partitions are reported too. Unchanged inputs recomputed to the same data version do not make
anything stale, which is what lets a reanalysis touch exactly the affected partitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from assets.inputs import base_model as base_model_asset, checkpoints as checkpoints_asset
from compute.checkpoints import discover_checkpoints, has_weights
from compute.listing import listing_fingerprint
from compute.models import content_hash, local_copy, model_folder
from orchestration.automation import instance as held
from orchestration.wiring.names import LISTING, TREND as TREND_GROUP

CODE_VERSION, DATA_VERSION = "dagster/code_version", "dagster/data_version"
INPUT_POINTER = "dagster/input_event_pointer/"  # storage id of the input materialisation a run read
BASE_MODEL, CHECKPOINTS = (a.key.to_user_string() for a in (base_model_asset, checkpoints_asset))


@dataclass
class Staleness:
    reasons: dict[tuple[str, str | None], list[str]] = field(default_factory=dict)  # (asset, partition) -> why

    def partitions(self) -> dict[str, list[str]]:
        """Checkpoint partition -> its stale or missing assets, in graph order."""
        out: dict[str, list[str]] = {}
        for (asset, partition), _ in self.reasons.items():
            if partition is not None:
                out.setdefault(partition, []).append(asset)
        return out


def _data_version(record) -> str | None:
    return record.event_log_entry.asset_materialization.tags.get(DATA_VERSION)


def _dep_changed(instance: dg.DagsterInstance, mat_record, dep: str, dep_partition: str | None, pointer: int) -> bool:
    """Was the dependency recomputed to other data since the materialisation `mat_record` read it?"""
    latest = held.latest(instance, dep, dep_partition)
    if latest is None or latest.storage_id == pointer:
        return False
    read = held.latest(instance, dep, None, pointer)
    if read is not None and read.partition_key == dep_partition:
        return _data_version(read) != _data_version(latest)
    if dep_partition is not None:
        # a dependency the asset does not load (`deps=`) gets a pointer to the dependency's latest event of
        # any partition: compare the data version this partition had when `mat_record` was written
        return _partition_changed(instance, mat_record, dep, dep_partition)
    return latest.timestamp > mat_record.timestamp


def _partition_changed(instance: dg.DagsterInstance, mat_record, dep: str, partition: str) -> bool:
    """Was partition `partition` of `dep` recomputed to other data since `mat_record` (of an asset that reads
    every partition) was written? Compares the data version it had then with the one it has now."""
    now = held.latest(instance, dep, partition)
    if now is None or now.storage_id < mat_record.storage_id:
        return False
    then = held.latest(instance, dep, partition, before=mat_record.storage_id)
    return then is None or _data_version(then) != _data_version(now)


def _content_changed(materialization, found_at: str, model_dir) -> bool:
    """Does the model found at `found_at` hash to another data version than it recorded? `model_dir()` gives
    its Hugging Face folder (merged for verl shards and adapters), asked for only when the listing changed."""
    recorded = materialization.metadata.get(LISTING)
    if recorded is not None and recorded.value == listing_fingerprint(found_at):
        return False
    return content_hash(model_dir()) != materialization.tags.get(DATA_VERSION)


def asset_specs(repo: dg.RepositoryDefinition) -> list[dg.AssetSpec]:
    """Every asset's spec in the code location `repo`, in graph order."""
    return [repo.asset_graph.get(key).to_asset_spec() for key in repo.asset_graph.toposorted_asset_keys]


def find_stale(instance: dg.DagsterInstance, specs: list[dg.AssetSpec], base_model: str,
               checkpoints_url: str, configured: dict[str, str] | None = None,
               sft_checkpoints_url: str = "") -> Staleness:
    """Stale and missing asset partitions of every registered checkpoint (and the base's own assets).
    `configured`: metadata name -> the value the settings give it now (`Settings.recorded()`)."""
    by_key = {s.key.to_user_string(): s for s in specs}
    deps = {k: [d.asset_key.to_user_string() for d in s.deps] for k, s in by_key.items()}
    found = {c.key: c for c in discover_checkpoints(checkpoints_url, sft_checkpoints_url) if not c.problem}
    keys = held.partitions(instance)
    result = Staleness()
    memo: dict[tuple[str, str | None], list[str]] = {}

    def check(asset: str, partition: str | None) -> list[str]:
        if (asset, partition) in memo:
            return memo[(asset, partition)]
        memo[(asset, partition)] = why = []
        spec = by_key[asset]
        record = held.latest(instance, asset, partition)
        mat = record.event_log_entry.asset_materialization if record else None
        if mat is None:
            why.append("missing")
        else:
            if mat.tags.get(CODE_VERSION) != (spec.code_version or None):
                why.append(f"code version {mat.tags.get(CODE_VERSION)} -> {spec.code_version}")
            why += [f"{name} changed" for name, value in (configured or {}).items()
                    if name in mat.metadata and mat.metadata[name].value != value]
            if asset == BASE_MODEL and has_weights(base_model):
                changed = _content_changed(mat, base_model, lambda: local_copy(base_model))
            elif asset == CHECKPOINTS and (ckpt := found.get(partition)) is not None:
                changed = _content_changed(mat, ckpt.uri, lambda: model_folder(ckpt, local_copy(base_model)))
            else:
                changed = False  # no folder (rotated away): the analysis stands on the model store's copy
            if changed:
                why.append("model files changed")
        for dep in deps[asset]:
            if partition is None and by_key[dep].partitions_def is not None:  # reads every checkpoint's partition
                for key in keys:
                    if check(dep, key):
                        why.append(f"{dep} [{key}] is stale")
                    elif mat is not None and _partition_changed(instance, record, dep, key):
                        why.append(f"{dep} [{key}] has new data")
                continue
            dep_partition = partition if by_key[dep].partitions_def is not None else None
            if check(dep, dep_partition):
                why.append(f"{dep} is stale")
                continue
            pointer = mat.tags.get(INPUT_POINTER + dep) if mat is not None else None
            if pointer is not None and _dep_changed(instance, record, dep, dep_partition, int(pointer)):
                why.append(f"{dep} has new data")
        if why:
            result.reasons[(asset, partition)] = why
        return why

    for asset, spec in by_key.items():
        if spec.partitions_def is None:
            if spec.group_name != TREND_GROUP:  # across checkpoints, not reanalysis: the trend is refreshed by
                check(asset, None)              # declarative automation, the A/B's curves by trend_job
            continue
        for key in keys:
            check(asset, key)
    return result
