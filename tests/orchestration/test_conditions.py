"""The trend's and the reports' automation refresh them when a dependency's data changes, not when a rerun
wrote the same rows: the real conditions, on a graph shaped like the study's (a partitioned table, the trend
over it, a report per partition reading both), on a real instance."""

import dagster as dg

from assets.report import REFRESH
from assets.trend import ALLOW_MISSING
from orchestration.wiring.partitions import checkpoints_partitions

VERSIONS = {}  # partition -> the data version the next materialisation of `table` writes


@dg.asset(partitions_def=checkpoints_partitions)
def table(context: dg.AssetExecutionContext) -> dg.Output:
    return dg.Output(None, data_version=dg.DataVersion(VERSIONS[context.partition_key]))


@dg.asset(deps=[table], automation_condition=ALLOW_MISSING)
def trend_of() -> None:
    pass


@dg.asset(deps=[table, trend_of], partitions_def=checkpoints_partitions, automation_condition=REFRESH)
def report_of() -> None:
    pass


ASSETS = [table, trend_of, report_of]


def _requested(result) -> set[tuple[str, str | None]]:
    out = set()
    for r in result.results:
        if r.true_subset.size:
            keys = r.true_subset.expensively_compute_partition_keys() if r.true_subset.is_partitioned else [None]
            out |= {(r.key.to_user_string(), k) for k in keys}
    return out


def _ticks(instance, cursor) -> tuple[set[tuple[str, str | None]], object]:
    """Evaluate as the daemon does, materialising what each tick requests, until a tick requests nothing;
    everything refreshed, and the cursor."""
    refreshed = set()
    while requested := _requested(result := dg.evaluate_automation_conditions(defs=ASSETS, instance=instance,
                                                                             cursor=cursor)):
        for name, partition in sorted(requested, key=str):
            asset = next(a for a in ASSETS if a.key.to_user_string() == name)
            assert dg.materialize([asset], instance=instance, partition_key=partition).success
        refreshed |= requested
        cursor = result.cursor
    return refreshed, result.cursor


def test_a_rerun_with_the_same_data_refreshes_nothing_and_a_change_refreshes_what_reads_it():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(checkpoints_partitions.name, ["a", "b"])
        VERSIONS.update(a="1", b="1")
        refreshed, cursor = _ticks(instance, None)  # the daemon's first tick, before any checkpoint
        assert refreshed == set()
        for key in ("a", "b"):
            dg.materialize([table], instance=instance, partition_key=key)
        refreshed, cursor = _ticks(instance, cursor)
        assert refreshed == {("trend_of", None), ("report_of", "a"), ("report_of", "b")}

        dg.materialize([table], instance=instance, partition_key="a")  # the same rows again
        refreshed, cursor = _ticks(instance, cursor)
        assert refreshed == set()  # Dagster's eager() refreshed the trend and both reports here

        VERSIONS["a"] = "2"  # different rows
        dg.materialize([table], instance=instance, partition_key="a")
        refreshed, cursor = _ticks(instance, cursor)
        assert refreshed == {("trend_of", None), ("report_of", "a"), ("report_of", "b")}  # b: through the trend
