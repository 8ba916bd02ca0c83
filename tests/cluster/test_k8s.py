"""infra/k8s, checked offline: every object parses, the RayCluster's spec passes dagster-ray's KubeRay config (a
permissive one: it types the top level) and its pod templates Kubernetes' own models (the client's deserializer:
it refuses a missing required field or a value the model checks, though not an unknown key); the deployment's
pieces agree with each other (image, secret names, Ray's address and version, GPUs per worker)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient

from compute.settings import ENV, Settings

K8S = Path(__file__).resolve().parents[2] / "infra" / "k8s"


def _load(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


def _as_k8s(obj: dict, kind: str):
    """The object as the kubernetes client's model `kind` (a ValueError where a required field is missing or a
    value is not allowed)."""
    return ApiClient()._ApiClient__deserialize(obj, kind)


def test_every_manifest_parses():
    assert sorted(p.name for p in K8S.glob("*.yaml")) == ["dagster-values.yaml", "raycluster.yaml", "secrets.yaml"]
    for path in K8S.glob("*.yaml"):
        assert isinstance(yaml.safe_load(path.read_text()), dict), path


def test_the_ray_cluster_has_gpu_workers_valid_for_kuberay_and_kubernetes():
    import ray
    from dagster_ray.kuberay.configs import RayClusterSpec

    cluster = _load("raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    spec = cluster["spec"]
    assert spec["rayVersion"] == ray.__version__  # the image's Ray is the driver's
    RayClusterSpec(head_group_spec=spec["headGroupSpec"], worker_group_specs=spec["workerGroupSpecs"],
                   ray_version=spec["rayVersion"], enable_in_tree_autoscaling=spec["enableInTreeAutoscaling"])
    head = _as_k8s(spec["headGroupSpec"]["template"], "V1PodTemplateSpec")
    assert spec["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"  # no shard lands on the head
    assert 10001 in {p.container_port for p in head.spec.containers[0].ports}  # the Ray client's port
    [gpu] = spec["workerGroupSpecs"]
    pod = _as_k8s(gpu["template"], "V1PodTemplateSpec")
    [container] = pod.spec.containers
    assert container.resources.limits["nvidia.com/gpu"] == gpu["rayStartParams"]["num-gpus"] == "1"
    assert container.image == head.spec.containers[0].image
    assert [e.secret_ref.name for e in container.env_from] == ["shiftlake-s3"]
    assert gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]


def test_the_dagster_values_point_the_runs_at_the_cluster_the_lake_and_postgres():
    values, cluster, secret = _load("dagster-values.yaml"), _load("raycluster.yaml"), _load("secrets.yaml")
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "orchestration.definitions"]
    image = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    assert f"{deployment['image']['repository']}:{deployment['image']['tag']}" == image
    env = {e.name: e.value for e in _as_k8s(deployment["env"], "list[V1EnvVar]")}
    assert env["RAY_ADDRESS"] == f"ray://{cluster['metadata']['name']}-head-svc:10001"
    settable = set(ENV.values()) | {f"SHIFTLAKE_{name.upper()}" for name in Settings.__dataclass_fields__}
    assert set(env) <= settable  # every variable is one the study reads
    assert env["SHIFTLAKE_RAY_WORKER_GPUS"] == cluster["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-gpus"]
    assert [s["name"] for s in deployment["envSecrets"]] == [secret["metadata"]["name"]]
    assert {"LAKE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret["stringData"])
    _as_k8s(secret, "V1Secret")
    assert values["postgresql"]["enabled"] and values["runLauncher"]["type"] == "K8sRunLauncher"
    queue = values["dagsterDaemon"]["runCoordinator"]
    assert queue["type"] == "QueuedRunCoordinator"
    assert queue["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] == cluster["spec"]["workerGroupSpecs"][0][
        "maxReplicas"]  # a run per GPU at most: more would only wait for Ray's GPUs


def test_a_bad_pod_template_is_refused():
    """The check can fail: a container without its required name is refused by Kubernetes' model."""
    broken = _load("raycluster.yaml")["spec"]["workerGroupSpecs"][0]["template"]
    del broken["spec"]["containers"][0]["name"]
    with pytest.raises(ValueError, match="name"):
        _as_k8s(broken, "V1PodTemplateSpec")
