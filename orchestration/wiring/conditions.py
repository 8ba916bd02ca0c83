"""Declarative automation of what is refreshed from the checkpoints' tables (the trend, the reports): Dagster's
`eager`, except that a dependency counts as updated only when its data version changed. A rerun that wrote
the same rows (its `rerun` metadata says "unchanged") then refreshes nothing downstream, as it promises."""

import dagster as dg

A = dg.AutomationCondition

# Dagster's any_deps_updated with "newly updated" narrowed to "data version changed"
ANY_DEPS_CHANGED = A.any_deps_match(
    (A.data_version_changed() & ~A.executed_with_root_target()).with_label("data_version_changed_without_root")
    | A.will_be_requested()).with_label("any_deps_data_changed")

EAGER = A.eager().replace("any_deps_updated", ANY_DEPS_CHANGED).with_label("eager on data changes")
