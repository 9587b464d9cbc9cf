"""deploy/k8s: every manifest valid against the Kubernetes schemas (offline), the settings
that must agree with the collector agree, the Dockerfile lints clean, and entrypoint.sh turns
a pod's ordinal or a Job's completion index into SHARD."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.config import Settings, load_config

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"   # the oldest minor the manifests promise to work on
CLUSTER_SCOPED = {"Namespace"}


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def render() -> list[dict]:
    """What `kubectl kustomize deploy/k8s` gives, for the features the kustomization uses."""
    spec = kustomization()
    images = {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in spec.get("images", [])}
    labels = {k: v for entry in spec.get("labels", []) for k, v in entry["pairs"].items()}
    rendered = []
    for name in spec["resources"]:
        for doc in documents(K8S / name):
            doc = copy.deepcopy(doc)
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
            doc["metadata"].setdefault("labels", {}).update(labels)
            for container in pod_spec(doc).get("containers", []) if pod_spec(doc) else []:
                container["image"] = images.get(container["image"], container["image"])
            rendered.append(doc)
    return rendered


def pod_spec(doc: dict) -> dict | None:
    if doc["kind"] in ("StatefulSet", "Deployment", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def by_kind(docs: list[dict], kind: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def all_manifests() -> list[tuple[str, dict]]:
    return [(f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
            for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in documents(path)]


@pytest.mark.parametrize("name,doc", all_manifests(), ids=[n for n, _ in all_manifests()])
def test_every_manifest_is_valid_against_the_kubernetes_schema(name: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_rendered_kustomization_is_valid_and_lists_every_live_manifest() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # Applied on their own: the HISTORY Job (a one-off with its range) and the Secrets' shape.
    assert on_disk - listed == {"history-job.yaml", "secrets.example.yaml"}
    for doc in render():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["kind"] in CLUSTER_SCOPED or doc["metadata"]["namespace"] == "tda-collector"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed: the test's own render covers it")
def test_kubectl_kustomize_renders_the_same_resources() -> None:
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    theirs = [d for d in yaml.safe_load_all(out) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in theirs) == \
        sorted((d["kind"], d["metadata"]["name"]) for d in render())
    for doc in theirs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_config_map_holds_a_config_the_collector_accepts(tmp_path: Path) -> None:
    config_map = by_kind(documents(K8S / "configmap.yaml"), "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    config = load_config(path, environ={})
    assert config.storage.backend == "bigquery"  # pods on several nodes share one store
    assert config.settings.health_port == 8080


def test_live_shards_statefulset_agrees_with_the_collector(tmp_path: Path) -> None:
    docs = render()
    sts, service, pdb = by_kind(docs, "StatefulSet"), by_kind(docs, "Service"), by_kind(docs, "PodDisruptionBudget")
    config_map = by_kind(docs, "ConfigMap")
    (tmp_path / "c.yaml").write_text(config_map["data"]["config.yaml"])
    settings = load_config(tmp_path / "c.yaml", environ={}).settings
    pod = sts["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = env_of(container)

    assert env["REPLICAS"] == str(sts["spec"]["replicas"])
    assert any(e["name"] == "POD_NAME" and e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
               for e in container["env"])
    assert container["args"][:2] == ["--mode", "live"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > max(settings.shutdown_grace_seconds,
                                                              Settings().shutdown_grace_seconds) + 10
    assert_probes_and_scrape(pod, container, settings.health_port)
    assert_locked_down(pod, container)
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    # State on a volume per shard: the spool and dead letters survive a pod's restart.
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/app/data"
    assert (Path("/app") / settings.state_dir).is_relative_to("/app/data")
    # Credentials from Secrets only: the key file is mounted, Loki's variables come from a Secret.
    secret_volumes = {v["name"]: v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
    assert Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).parent == Path(mounts[next(iter(secret_volumes))])
    assert [s["secretRef"]["name"] for s in container["envFrom"]] == ["tda-collector-loki"]
    assert not {"LOKI_PASSWORD", "LOKI_USERNAME", "LOKI_URL"} & set(env)
    # Headless service and PDB select exactly these pods.
    labels = pod["metadata"]["labels"]
    assert service["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_history_fan_out_is_an_indexed_job_with_state_in_an_empty_dir() -> None:
    job = by_kind(documents(K8S / "history-job.yaml"), "Job")
    pod = job["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert env_of(container)["REPLICAS"] == str(job["spec"]["completions"])
    assert container["args"][:2] == ["--mode", "history"] and "--start" in container["args"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["terminationGracePeriodSeconds"] > Settings().shutdown_grace_seconds + 10
    data = next(v for v in pod["spec"]["volumes"] if v["name"] == "data")
    assert "emptyDir" in data
    assert_locked_down(pod, container)
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and 2 in rule["onExitCodes"]["values"]


def assert_probes_and_scrape(pod: dict, container: dict, port: int) -> None:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and ports[get["port"]] == port
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/port"] == str(port)
    assert notes["prometheus.io/path"] == "/metrics"


def assert_locked_down(pod: dict, container: dict) -> None:
    context = pod["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == dockerfile_uid() and context["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/app/data", "/tmp"} <= mounts  # everything the collector writes is on a volume


def dockerfile_uid() -> int:
    user = next(line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
                if line.startswith("USER "))
    return int(user.split(":")[0])


# -- Dockerfile -----------------------------------------------------------------------------

def hadolint() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.exists()), None)


@pytest.mark.skipif(hadolint() is None, reason="hadolint not installed (pip install -r requirements-dev.txt ships it)")
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_the_image_carries_every_package_the_collector_imports() -> None:
    copied = {line.split()[1].rstrip("/") for line in (ROOT / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ") and line.split()[1].endswith("/")}
    assert {"core", "supervisor", "worker"} <= copied


# -- entrypoint.sh --------------------------------------------------------------------------

def run_entrypoint(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """entrypoint.sh with a `python` on PATH that prints what it was given instead of running."""
    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text('#!/bin/sh\necho "SHARD=${SHARD:-} ARGS=$*"\n')
    stub.chmod(0o755)
    base = {"PATH": f"{stub.parent}:/usr/bin:/bin"}
    return subprocess.run(["sh", str(ROOT / "entrypoint.sh"), *args], env={**base, **env},
                          capture_output=True, text=True, timeout=30)


def test_entrypoint_turns_the_statefulset_ordinal_into_the_shard(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, {"POD_NAME": "tda-collector-2", "REPLICAS": "3"}, "--mode", "live")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SHARD=2/3 ARGS=-m supervisor --mode live"


def test_entrypoint_turns_the_job_completion_index_into_the_shard(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, {"JOB_COMPLETION_INDEX": "1", "REPLICAS": "3",
                                       "POD_NAME": "tda-history-1-x7k2p"}, "--mode", "history")
    assert result.stdout.strip() == "SHARD=1/3 ARGS=-m supervisor --mode history"


def test_entrypoint_leaves_an_explicit_shard_and_plain_docker_alone(tmp_path: Path) -> None:
    explicit = run_entrypoint(tmp_path, {"SHARD": "0/2", "POD_NAME": "tda-collector-2", "REPLICAS": "3"})
    assert explicit.stdout.strip() == "SHARD=0/2 ARGS=-m supervisor"
    plain = run_entrypoint(tmp_path, {"POD_NAME": "tda-collector-2"})
    assert plain.stdout.strip() == "SHARD= ARGS=-m supervisor"


def test_entrypoint_refuses_a_pod_name_without_an_ordinal(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, {"POD_NAME": "collector-abc", "REPLICAS": "3"})
    assert result.returncode == 2
    assert "cannot derive a shard" in result.stderr and result.stdout == ""


def test_entrypoint_still_ends_by_exec_ing_the_supervisor() -> None:
    lines = [line for line in (ROOT / "entrypoint.sh").read_text().splitlines() if line.strip()]
    assert lines[-1] == 'exec python -m supervisor "$@"'
