"""``deploy/``: every manifest validated against its kind's schema, and checked against the server it runs.

Core kinds are validated by the Kubernetes client's models (``kubernetes`` 37, pinned in the test extra): pydantic
models generated from the Kubernetes OpenAPI document, with unknown fields forbidden and camelCase names only. The
KServe kinds by ``tests/schemas/kserve.schema.json`` (the fields we use), their containers by the core schema again.
Then what no schema knows: the probes reach routes the server serves on the port the config binds, the grace period
covers the drain, the HPA's metric is one the server exports, the runtime's args parse.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client as k8s

from modelserver import cli
from modelserver.app import DRAIN_SECONDS
from modelserver.config import CliOptions, load_config
from modelserver.container import server_args
from tests.server import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
KSERVE = ROOT / "deploy" / "kserve"
KSERVE_SCHEMA = json.loads((ROOT / "tests" / "schemas" / "kserve.schema.json").read_text())
WORKER_STOP_SECONDS = 5  # WorkerConnection.stop's grace, workers stopped in parallel

CORE_KINDS: dict[tuple[str, str], type] = {
    ("v1", "ConfigMap"): k8s.V1ConfigMap,
    ("v1", "Service"): k8s.V1Service,
    ("apps/v1", "Deployment"): k8s.V1Deployment,
    ("policy/v1", "PodDisruptionBudget"): k8s.V1PodDisruptionBudget,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.V2HorizontalPodAutoscaler,
}


def documents(folder: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        [document] = list(yaml.safe_load_all(path.read_text()))
        found[path.name] = document
    return found


def validate_model(model: Any, document: dict[str, Any]) -> Any:
    """Validate, then require the round trip to give the document back: the models also accept Python's snake_case
    names (``container_port``), which the API server refuses."""
    validated = model.model_validate(document, strict=True)
    if validated.model_dump(by_alias=True, exclude_unset=True, mode="json") != document:
        raise ValueError(f"not in the API's own spelling: {document}")
    return validated


def validate_core(document: dict[str, Any]) -> Any:
    return validate_model(CORE_KINDS[(document["apiVersion"], document["kind"])], document)


MANIFESTS = documents(KUBERNETES)
KSERVE_MANIFESTS = documents(KSERVE)


@pytest.mark.parametrize("name", sorted(n for n in MANIFESTS if n != "kustomization.yaml"))
def test_core_manifest_matches_the_kubernetes_schema(name: str) -> None:
    validate_core(MANIFESTS[name])


def test_the_schema_check_refuses_what_kubernetes_refuses() -> None:
    deployment = json.loads(json.dumps(MANIFESTS["deployment.yaml"]))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for field, value in (("livenesProbe", {}), ("termination_message_path", "/x")):
        broken = json.loads(json.dumps(deployment))
        broken["spec"]["template"]["spec"]["containers"][0][field] = value
        with pytest.raises(ValueError, match=field):
            validate_core(broken)
    container["ports"][0]["containerPort"] = "8080"
    with pytest.raises(ValueError, match="containerPort"):
        validate_core(deployment)


def test_kustomization_lists_every_manifest_but_the_alternative_hpa() -> None:
    resources = MANIFESTS["kustomization.yaml"]["resources"]
    assert sorted(resources) == sorted(set(MANIFESTS) - {"kustomization.yaml", "hpa-queue-depth.yaml"})


def pod_spec() -> dict[str, Any]:
    return MANIFESTS["deployment.yaml"]["spec"]["template"]["spec"]


def container() -> dict[str, Any]:
    [only] = pod_spec()["containers"]
    return only


def mounted_config(tmp_path: Path) -> Any:
    """The ConfigMap's config.properties as the server loads it (the model store made to exist)."""
    text = MANIFESTS["configmap.yaml"]["data"]["config.properties"]
    store = tmp_path / "model-store"
    store.mkdir()
    config = tmp_path / "config.properties"
    config.write_text(text.replace("/home/model-server/model-store", str(store)))
    return load_config(CliOptions(ts_config=str(config)), {}, cwd=str(tmp_path))


def test_the_deployment_starts_the_server_on_the_mounted_config(tmp_path: Path) -> None:
    args = server_args(container()["args"])
    assert args is not None and "--foreground" in args
    parsed = cli.build_parser().parse_args(args)
    mounts = {mount["name"]: mount["mountPath"] for mount in container()["volumeMounts"]}
    assert Path(parsed.ts_config).parent == Path(mounts["config"])
    config = mounted_config(tmp_path)
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert (config.inference_address.host, config.inference_address.port) == ("0.0.0.0", ports["http"])
    assert (config.metrics_address.host, config.metrics_address.port) == ("0.0.0.0", ports["metrics"])
    assert config.management_address.host == "127.0.0.1"  # management stays inside the pod
    annotations = MANIFESTS["deployment.yaml"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    assert config.properties["metrics_mode"] == "prometheus"  # the HPA example's metric exists only then
    assert config.properties["model_store"].endswith("model-store") and mounts["model-store"].endswith("model-store")


def test_probes_reach_routes_the_server_serves_without_a_key(tmp_path: Path) -> None:
    from modelserver.app import ModelServer

    config = mounted_config(tmp_path)
    assert config.disable_token_authorization  # the kubelet sends no key
    server = ModelServer(config)
    [(_, inference), *_] = server.listeners()
    paths = {route.compiled.template for route in inference.router.routes}
    probes = {kind: container()[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {kind: probe["httpGet"]["path"] for kind, probe in probes.items()} == {
        "startupProbe": "/v2/health/ready",
        "readinessProbe": "/v2/health/ready",
        "livenessProbe": "/ping",
    }
    for probe in probes.values():
        assert probe["httpGet"]["path"] in paths and probe["httpGet"]["port"] == "http"
    startup = probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= config.default_startup_timeout * 2


def test_the_grace_period_covers_the_drain() -> None:
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = int(pre_stop[1]) + DRAIN_SECONDS + WORKER_STOP_SECONDS
    assert needed < pod_spec()["terminationGracePeriodSeconds"] <= needed + 15


def test_selectors_match_the_pods() -> None:
    labels = MANIFESTS["deployment.yaml"]["spec"]["template"]["metadata"]["labels"]
    assert MANIFESTS["deployment.yaml"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert MANIFESTS["service.yaml"]["spec"]["selector"].items() <= labels.items()
    assert MANIFESTS["pdb.yaml"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    names = {port["name"] for port in container()["ports"]}
    assert {port["targetPort"] for port in MANIFESTS["service.yaml"]["spec"]["ports"]} <= names
    for hpa in ("hpa-cpu.yaml", "hpa-queue-depth.yaml"):
        target = MANIFESTS[hpa]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", MANIFESTS["deployment.yaml"]["metadata"]["name"])


def test_the_queue_depth_hpa_names_metrics_the_server_exports() -> None:
    exported = set(re.findall(r"\| `((?:ts|modelserver)_[a-z_]+)` \|", (ROOT / "docs" / "metrics.md").read_text()))
    source = "\n".join(path.read_text() for path in (ROOT / "modelserver" / "metrics").glob("*.py"))
    hpa = MANIFESTS["hpa-queue-depth.yaml"]
    [pods] = [metric["pods"] for metric in hpa["spec"]["metrics"] if metric["type"] == "Pods"]
    named = {pods["metric"]["name"]}
    named |= set(re.findall(r"\b((?:ts|modelserver)_[a-z_]+)\b", (KUBERNETES / "hpa-queue-depth.yaml").read_text()))
    for name in named:
        assert name in exported and f'"{name}"' in source, name


@pytest.mark.parametrize("name", sorted(n for n in KSERVE_MANIFESTS))
def test_kserve_manifest_matches_its_schema(name: str) -> None:
    document = KSERVE_MANIFESTS[name]
    jsonschema.validate(document, KSERVE_SCHEMA)
    for item in document["spec"].get("containers", []):
        validate_model(k8s.V1Container, item)


def test_the_kserve_schema_refuses_a_misspelt_field() -> None:
    broken = json.loads(json.dumps(KSERVE_MANIFESTS["inferenceservice-v2.yaml"]))
    broken["spec"]["predictor"]["model"]["protocolVersions"] = "v2"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, KSERVE_SCHEMA)


def test_inference_services_use_the_runtime_with_each_protocol() -> None:
    runtime = KSERVE_MANIFESTS["cluster-serving-runtime.yaml"]
    formats = {entry["name"] for entry in runtime["spec"]["supportedModelFormats"]}
    services = [doc for doc in KSERVE_MANIFESTS.values() if doc["kind"] == "InferenceService"]
    protocols = set()
    for service in services:
        model = service["spec"]["predictor"]["model"]
        assert model["runtime"] == runtime["metadata"]["name"] and model["modelFormat"]["name"] in formats
        protocols.add(model["protocolVersion"])
    assert protocols == {"v1", "v2"} <= set(runtime["spec"]["protocolVersions"])
