"""Shared fixtures: one small toy world per test session, and a lake with every asset materialised
from it through real Dagster runs (ephemeral instance, temporary lake folder)."""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import dagster as dg
import pytest
import torch

from compute.settings import Settings
from compute.processes import stop_group
from compute.toyworld.world import SMALL, build_world

# torch on 2 threads, or fewer where pytest-xdist's workers share the cores: on 2 cores, beside another busy process,
# the small world's lockstep decoding took 8.8 s on 2 threads and 2.9 s on one (alone: 3.1 s and 2.9 s). The
# workers' child processes (Dagster runs, daemons, the CLI) get the same count through OMP_NUM_THREADS.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def world_root(tmp_path_factory) -> Path:
    """Where the session's toy worlds are built. Under pytest-xdist one folder for all workers (the first to want
    a world builds it, the others wait on its build lock), so the small world is trained once per run."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.getbasetemp().parent / "shiftlake-cache" / "toyworld"
    return tmp_path_factory.mktemp("shiftlake-cache") / "toyworld"


@pytest.fixture(scope="session")
def small_world(world_root) -> Path:
    return build_world(SMALL, root=world_root, log=lambda *_: None)


@pytest.fixture(scope="session")
def trainer_roots(small_world, tmp_path_factory) -> dict[str, Path]:
    """One watched folder per trainer, as each would write it (TRL runs: a few seconds each on 2 cores)."""
    from tests.trainers import openrlhf_hf_checkpoint, sharded_hf_checkpoint, trl_checkpoints

    out = tmp_path_factory.mktemp("trainers")
    base, rl = small_world / "base", sorted((small_world / "checkpoints").iterdir())[-1]
    roots = {
        "trl_full": trl_checkpoints(base, out / "trl_full", save_total_limit=2, steps=3),
        "trl_lora": trl_checkpoints(base, out / "trl_lora", peft=True, steps=2),
        "sharded": out / "sharded",
        "openrlhf": out / "openrlhf",
    }
    sharded_hf_checkpoint(rl, roots["sharded"] / "checkpoint-4")
    openrlhf_hf_checkpoint(base, roots["openrlhf"], step=2)
    openrlhf_hf_checkpoint(rl, roots["openrlhf"], step=4, max_shard_size="20KB")
    return roots


def study_settings(world: Path, lake: Path | str, **overrides) -> Settings:
    return dataclasses.replace(
        Settings(lake_url=str(lake), base_model=str(world / "base"), checkpoints_url=str(world / "checkpoints"),
                 problems_url=str(world / "problems.jsonl")),
        **{"samples_per_problem": 2, "max_new_tokens": 40, "batch_size": 8, "chunk_tokens": 64,
           "cross_eps_js": "-inf,0.01,0.1,inf", **overrides})


def _assets():
    import assets

    return dg.load_assets_from_package_module(assets)


def _job_assets(name: str) -> list[str]:
    """The assets of one of the code location's jobs, from the job's own selection."""
    from orchestration.automation.jobs import JOBS, assets_of
    from orchestration.wiring.io_manager import LakeIOManager
    from orchestration.wiring.resources import StudyResource

    job = next(j for j in JOBS if j.name == name)
    resources = {"study": StudyResource(), "io_manager": LakeIOManager(lake_url="unused")}
    return assets_of(job, dg.Definitions(assets=_assets(), jobs=[job], resources=resources).get_repository_def())


BASE_ASSETS, CHECKPOINT_ASSETS = _job_assets("base_job"), _job_assets("checkpoint_job")
TREND_ASSETS = _job_assets("trend_job")


def materialise(settings: Settings, instance: dg.DagsterInstance, selection: list[str],
                partition_key: str | None = None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """One `dagster.materialize` run of `selection` from the code location's asset modules, into `settings`'
    lake. The assets are loaded afresh: the code location's own objects hold state bound to its instance."""
    from orchestration.wiring.io_manager import LakeIOManager
    from orchestration.wiring.resources import StudyResource

    from orchestration.definitions import readers  # the code location's, as its runs use

    resources = {"io_manager": LakeIOManager(lake_url=settings.lake_url, readers=readers),
                 "study": StudyResource.from_settings(settings)}
    return dg.materialize(_assets(), instance=instance, resources=resources,
                          selection=selection,
                          partition_key=partition_key, raise_on_error=raise_on_error)


def materialise_all(settings: Settings, instance: dg.DagsterInstance) -> list[str]:
    """Run the base assets once, then every checkpoint partition, as `dagster.materialize` runs."""
    from orchestration.app.demo import register_checkpoints

    keys = register_checkpoints(instance, settings.checkpoints_url, settings.sft_checkpoints_url)
    base = materialise(settings, instance, BASE_ASSETS)
    assert base.success
    evaluations = base.get_asset_check_evaluations()
    assert len(evaluations) == 6 and all(e.passed for e in evaluations)  # the data-quality checks ran and passed
    for key in keys:
        result = materialise(settings, instance, CHECKPOINT_ASSETS, key)
        assert result.success
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == 11 and all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]
        assert "never_switch_reproduces_rollouts" in {e.check_name for e in evaluations}  # the identity, in the lake
    assert materialise(settings, instance, TREND_ASSETS).success
    for key in keys:
        assert materialise(settings, instance, ["report"], key).success
    return keys


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real SeaweedFS S3 server on free ports for the session, its credentials in the environment
    (as `make s3-up` prints them); stopped at the end (SIGTERM, then SIGKILL after 2 s: the session's data is
    thrown away, and weed's filer waits 15 s for its own S3 gateway's subscription before it stops)."""
    from infra import s3local

    state = tmp_path_factory.mktemp("s3")
    server = s3local.start(state=state, identities=state / "identities.json")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in server.env.items():
            if k != "LAKE_URL":
                mp.setenv(k, v)
        try:
            yield server
        finally:
            stop_group(server.process, timeout=2.0)


@pytest.fixture(scope="session")
def small_ab(small_world, world_root) -> Path:
    """The small world's A/B of divergence-weighted advantages: 2 seeds per arm, 2 samples per problem (seconds)."""
    from compute.toyworld.ab import build_ab

    return build_ab(SMALL, root=world_root, seeds=2, samples=2, log=lambda *_: None)


@pytest.fixture(scope="session")
def built_lakes() -> dict[str, tuple[str, list[str]]]:
    """The `lake` fixture's lakes, built once per session and kept: pytest tears a parametrised session fixture
    down whenever the next test wants the other parameter, which pytest-xdist's workers ask for module by module."""
    return {}


@pytest.fixture(scope="session", params=["local", "s3"])
def lake(request, small_world, small_ab, tmp_path_factory, built_lakes) -> tuple[str, list[str]]:
    """(lake URL, checkpoint keys) of a lake holding every table of the small world, its A/B's training curves
    among them: once in a local folder, once on the live SeaweedFS S3 server (every test that reads it runs on
    both)."""
    if request.param == "s3":
        request.getfixturevalue("s3_server")
    if request.param not in built_lakes:
        if request.param == "s3":
            location = f"s3://shiftlake/test-{uuid.uuid4().hex[:8]}"
        else:
            location = tmp_path_factory.mktemp("lake")
        settings = study_settings(small_world, location, ab_curves_url=str(small_ab))
        with dg.DagsterInstance.ephemeral() as instance:
            keys = materialise_all(settings, instance)
        built_lakes[request.param] = (settings.lake_url, keys)
    return built_lakes[request.param]


# Under pytest-xdist (`make test`: `-n 2 --dist loadscope --no-loadscope-reorder`) a worker takes whole modules, so
# that a module's fixtures are built once. The longest modules (a minute or more each on 2 cores) are handed out
# first, longest first, so that no worker is left running one of them alone at the end.
LONGEST_FIRST = ["tests/cluster/test_ray.py", "tests/e2e/test_demo.py", "tests/s3/test_faults.py",
                 "tests/e2e/test_live_demo.py", "tests/assets/test_bad_input.py", "tests/e2e/test_sensor_daemon.py",
                 "tests/cluster/test_postgres.py", "tests/compute/test_floor.py",
                 "tests/orchestration/test_staleness.py", "tests/assets/test_checks.py"]


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by fixture parameters, which it keeps within a module
def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
