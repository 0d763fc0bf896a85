#!/usr/bin/env python3
"""Checks of the rendered Kubernetes base (kubectl kustomize deploy/kubernetes).

    python3 tests/e2e/kubernetes_lint.py split RENDERED BUILTIN_OUT CRD_OUT
        split the rendered stream: built-in kinds (for kubernetes-validate)
        and prometheus-operator kinds (which it has no schema for)
    python3 tests/e2e/kubernetes_lint.py check RENDERED PROM_OUT
        structural and consistency checks of everything rendered (below);
        writes PROM_OUT, a Prometheus config with the ServiceMonitor and the
        ScrapeConfig translated into scrape jobs, for `promtool check config`
    python3 tests/e2e/kubernetes_lint.py overlay RENDERED
        checks a rendered test overlay (tests/e2e/check_kubernetes.sh builds
        it): its config and secret replaced the base's placeholders
    python3 tests/e2e/kubernetes_lint.py dashboard RENDERED
        checks the rendered deploy/kubernetes/grafana-dashboard: one
        ConfigMap, labelled grafana_dashboard: "1" for the Grafana sidecar,
        a grafana_folder annotation, no hash suffix, its one key holding
        exactly dashboards/avepoint-scan-profiles.json, small enough for
        `kubectl apply` (client-side apply keeps a copy in an annotation of
        at most 256 KiB)

What `check` asserts:
  - every object: apiVersion, kind, metadata.name, namespace
  - Deployment: the hardening the base promises (non-root 65532,
    read-only root, no privilege escalation, all capabilities dropped,
    RuntimeDefault seccomp, no service account token, resources, probes on
    /-/healthy and /-/ready), the config file and the secret file the
    container reads are really mounted from the ConfigMap and the Secret
  - ConfigMap avepoint.yml: valid YAML, discovery enabled, client_secret_file
    is the mounted secret; Secret: the placeholder is still a placeholder
  - Service: port 10290 named http-metrics, selects the Deployment's pods
  - ServiceMonitor: selects the Service, scrapes http-metrics /metrics,
    interval 60s, scrapeTimeout 30s
  - ScrapeConfig: /sd on the Service's DNS name in its namespace, /probe,
    honorLabels: true (else the probed customer_id becomes
    exported_customer_id), the customer-id relabelling, __address__ back to
    the Service
  - PrometheusRule: spec.groups == groups of deploy/prometheus/avepoint-alerts.yml
Needs PyYAML. Exits 1 listing every failure.
"""

import base64
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "avepoint-alerts.yml"
OPERATOR_GROUP = "monitoring.coreos.com/"
UID = 65532
PORT = 10290
PLACEHOLDER = "REPLACE-ME"

errors: list[str] = []


def expect(cond: bool, msg: str) -> bool:
    if not cond:
        errors.append(msg)
    return cond


def get(obj, path, default=None):
    """get(obj, "spec.template.spec") with list indexes as numbers."""
    cur = obj
    for part in path.split("."):
        if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return default
    return cur


def load(path):
    docs = [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if d]
    return docs


def by_kind(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    expect(len(found) == 1, f"want exactly one {kind}, found {len(found)}")
    return found[0] if found else {}


def split(rendered, builtin_out, crd_out):
    docs = load(rendered)
    builtin = [d for d in docs if not str(d.get("apiVersion", "")).startswith(OPERATOR_GROUP)]
    crds = [d for d in docs if str(d.get("apiVersion", "")).startswith(OPERATOR_GROUP)]
    Path(builtin_out).write_text(yaml.safe_dump_all(builtin, sort_keys=False), encoding="utf-8")
    Path(crd_out).write_text(yaml.safe_dump_all(crds, sort_keys=False), encoding="utf-8")
    print(f"{len(builtin)} built-in objects ({', '.join(d['kind'] for d in builtin)}), "
          f"{len(crds)} prometheus-operator objects ({', '.join(d['kind'] for d in crds)})")
    return 0


def check_common(docs):
    for d in docs:
        name = f"{d.get('kind')}/{get(d, 'metadata.name')}"
        expect(bool(d.get("apiVersion")), f"{name}: no apiVersion")
        expect(bool(d.get("kind")), f"{name}: no kind")
        expect(bool(get(d, "metadata.name")), f"{name}: no metadata.name")
        expect(bool(get(d, "metadata.namespace")), f"{name}: no metadata.namespace")
        labels = get(d, "metadata", {}).get("labels", {}) or {}
        expect(labels.get("app.kubernetes.io/part-of") == "avepoint-exporter",
               f"{name}: missing label app.kubernetes.io/part-of=avepoint-exporter")
    expected = {("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Secret"),
                ("v1", "Service"), ("apps/v1", "Deployment"),
                ("monitoring.coreos.com/v1", "ServiceMonitor"),
                ("monitoring.coreos.com/v1alpha1", "ScrapeConfig"),
                ("monitoring.coreos.com/v1", "PrometheusRule")}
    got = {(d.get("apiVersion"), d.get("kind")) for d in docs}
    expect(got == expected, f"rendered kinds {sorted(got)}, want {sorted(expected)}")
    namespaces = {get(d, "metadata.namespace") for d in docs}
    expect(len(namespaces) == 1, f"objects in several namespaces: {namespaces}")


def check_deployment(dep, cm, secret, sa):
    pod = get(dep, "spec.template.spec", {})
    containers = pod.get("containers", [])
    if not expect(len(containers) == 1, "Deployment: want one container"):
        return
    c = containers[0]
    psc = pod.get("securityContext", {})
    csc = c.get("securityContext", {})
    expect(pod.get("automountServiceAccountToken") is False,
           "Deployment: automountServiceAccountToken must be false")
    expect(pod.get("serviceAccountName") == get(sa, "metadata.name"),
           "Deployment: serviceAccountName is not the base's ServiceAccount")
    expect(sa.get("automountServiceAccountToken") is False,
           "ServiceAccount: automountServiceAccountToken must be false")
    for where, sc in (("pod", psc), ("container", csc)):
        expect(sc.get("runAsNonRoot") is True, f"Deployment {where}: runAsNonRoot must be true")
        expect(sc.get("runAsUser") == UID, f"Deployment {where}: runAsUser must be {UID}")
        expect(get(sc, "seccompProfile.type") == "RuntimeDefault",
               f"Deployment {where}: seccompProfile must be RuntimeDefault")
    expect(csc.get("readOnlyRootFilesystem") is True, "Deployment: readOnlyRootFilesystem must be true")
    expect(csc.get("allowPrivilegeEscalation") is False, "Deployment: allowPrivilegeEscalation must be false")
    expect(get(csc, "capabilities.drop") == ["ALL"], "Deployment: capabilities.drop must be [ALL]")
    expect(not get(csc, "capabilities.add"), "Deployment: no capabilities may be added")
    res = c.get("resources", {})
    for key in ("requests.cpu", "requests.memory", "limits.memory"):
        expect(get(res, key) is not None, f"Deployment: resources.{key} missing")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    expect(ports.get("http-metrics") == PORT, f"Deployment: containerPort http-metrics must be {PORT}")
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        expect(get(c, f"{probe}.httpGet.path") == path, f"Deployment: {probe} must GET {path}")
        expect(get(c, f"{probe}.httpGet.port") in ("http-metrics", PORT),
               f"Deployment: {probe} must use port http-metrics")

    # The files the container reads come from the ConfigMap and the Secret.
    args = c.get("args", [])
    config_args = [a for a in args if a.startswith("--config.file=")]
    if not expect(len(config_args) == 1, "Deployment: want one --config.file=... argument"):
        return
    config_path = config_args[0].split("=", 1)[1]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = c.get("volumeMounts", [])

    def source_of(path):
        """(volume, key) that provides the file at path, via a directory mount."""
        for m in mounts:
            mdir = m["mountPath"].rstrip("/") + "/"
            if path.startswith(mdir) and "/" not in path[len(mdir):]:
                expect(m.get("readOnly") is True, f"Deployment: mount {m['mountPath']} must be readOnly")
                expect("subPath" not in m, f"Deployment: mount {m['mountPath']}: no subPath (it would not update)")
                return volumes.get(m["name"], {}), path[len(mdir):]
        return {}, None

    vol, key = source_of(config_path)
    expect(get(vol, "configMap.name") == get(cm, "metadata.name"),
           f"Deployment: {config_path} is not mounted from the ConfigMap {get(cm, 'metadata.name')}")
    expect(key in (cm.get("data") or {}), f"ConfigMap: has no key {key!r} for {config_path}")

    try:
        config = yaml.safe_load((cm.get("data") or {}).get(key or "", "")) or {}
    except yaml.YAMLError as e:
        expect(False, f"ConfigMap {key}: not YAML: {e}")
        return
    expect(get(config, "discovery.enabled") is True, "ConfigMap avepoint.yml: discovery.enabled must be true")
    expect(get(config, "discovery.refresh_interval") is not None,
           "ConfigMap avepoint.yml: discovery.refresh_interval missing")
    expect(not config.get("targets"), "ConfigMap avepoint.yml: the base discovers; no static targets")
    expect(get(config, "avepoint.client_id") is not None, "ConfigMap avepoint.yml: avepoint.client_id missing")
    secret_path = get(config, "avepoint.client_secret_file")
    if expect(isinstance(secret_path, str), "ConfigMap avepoint.yml: avepoint.client_secret_file missing"):
        vol, key = source_of(secret_path)
        expect(get(vol, "secret.secretName") == get(secret, "metadata.name"),
               f"Deployment: {secret_path} is not mounted from the Secret {get(secret, 'metadata.name')}")
        expect(key in (secret.get("data") or {}), f"Secret: has no key {key!r} for {secret_path}")
        mode = get(vol, "secret.defaultMode")
        expect(mode is not None and mode & 0o007 == 0,
               "Deployment: the secret volume must not be world-readable (defaultMode)")
    env = {e.get("name") for e in c.get("env", [])}
    expect("AVEPOINT_CLIENT_SECRET" not in env,
           "Deployment: pass the secret as a file, not AVEPOINT_CLIENT_SECRET")
    return config


def check_secret_placeholder(secret):
    data = secret.get("data") or {}
    for k, v in data.items():
        value = base64.b64decode(v).decode().strip()
        expect(value == PLACEHOLDER,
               f"Secret key {k}: the base must ship the placeholder {PLACEHOLDER!r}, not a value")


def check_service(svc, dep):
    ports = get(svc, "spec.ports", [])
    expect(any(p.get("name") == "http-metrics" and p.get("port") == PORT for p in ports),
           f"Service: want port {PORT} named http-metrics")
    selector = get(svc, "spec.selector", {}) or {}
    pod_labels = get(dep, "spec.template.metadata.labels", {}) or {}
    expect(bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items()),
           f"Service: selector {selector} does not match the pod labels {pod_labels}")
    expect((get(dep, "spec.selector.matchLabels", {}) or {}).items() <= pod_labels.items(),
           "Deployment: selector does not match its own pod labels")


def check_servicemonitor(sm, svc):
    sel = get(sm, "spec.selector.matchLabels", {}) or {}
    svc_labels = get(svc, "metadata.labels", {}) or {}
    expect(bool(sel) and all(svc_labels.get(k) == v for k, v in sel.items()),
           f"ServiceMonitor: selector {sel} does not select the Service (labels {svc_labels})")
    eps = get(sm, "spec.endpoints", [])
    if not expect(len(eps) == 1, "ServiceMonitor: want one endpoint"):
        return
    ep = eps[0]
    expect(ep.get("port") == "http-metrics", "ServiceMonitor: endpoint port must be http-metrics")
    expect(ep.get("path") == "/metrics", "ServiceMonitor: path must be /metrics")
    expect(ep.get("interval") == "60s", "ServiceMonitor: interval must be 60s")
    expect(ep.get("scrapeTimeout") == "30s", "ServiceMonitor: scrapeTimeout must be 30s")
    check_relabelings("ServiceMonitor metricRelabelings", ep.get("metricRelabelings", []))


RELABEL_KEYS = {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}


def check_relabelings(where, relabelings):
    for i, r in enumerate(relabelings or []):
        extra = set(r) - RELABEL_KEYS
        expect(not extra, f"{where}[{i}]: unknown keys {sorted(extra)}")


def check_scrapeconfig(sc, svc):
    ns, name = get(svc, "metadata.namespace"), get(svc, "metadata.name")
    address = f"{name}.{ns}.svc:{PORT}"
    sds = get(sc, "spec.httpSDConfigs", [])
    if expect(len(sds) == 1, "ScrapeConfig: want one httpSDConfigs entry"):
        expect(sds[0].get("url") == f"http://{address}/sd",
               f"ScrapeConfig: httpSDConfigs url {sds[0].get('url')!r}, want http://{address}/sd")
    expect(get(sc, "spec.metricsPath") == "/probe", "ScrapeConfig: metricsPath must be /probe")
    expect(get(sc, "spec.honorLabels") is True,
           "ScrapeConfig: honorLabels must be true (the probed series carry customer_id; "
           "without it Prometheus renames it to exported_customer_id)")
    for key, want in (("scrapeInterval", "60s"), ("scrapeTimeout", "30s")):
        expect(get(sc, f"spec.{key}") == want, f"ScrapeConfig: {key} must be {want}")
    rl = get(sc, "spec.relabelings", []) or []
    check_relabelings("ScrapeConfig relabelings", rl)
    expect({"sourceLabels": ["__address__"], "targetLabel": "__param_customer_id"} in rl,
           "ScrapeConfig: __address__ must be relabelled into __param_customer_id")
    expect(any(r.get("targetLabel") == "customer_id" for r in rl),
           "ScrapeConfig: customer_id label must be set")
    addr = [r for r in rl if r.get("targetLabel") == "__address__"]
    expect(len(addr) == 1 and addr[0].get("replacement") == address and "sourceLabels" not in addr[0],
           f"ScrapeConfig: __address__ must be replaced by {address}")
    # The alerts' `exporter` label is namespace/service on both jobs: the
    # probe targets must carry the Service's, as the ServiceMonitor's do.
    for label, want in (("namespace", ns), ("service", name)):
        got = [r.get("replacement") for r in rl if r.get("targetLabel") == label and "sourceLabels" not in r]
        expect(got == [want], f"ScrapeConfig: relabelings must set {label} to {want!r} (the Service's), got {got}")
    order = [r.get("targetLabel") for r in rl]
    if "__param_customer_id" in order and "__address__" in order:
        expect(order.index("__param_customer_id") < order.index("__address__"),
               "ScrapeConfig: copy __address__ to __param_customer_id before replacing it")


def check_prometheusrule(pr):
    want = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    expect(get(pr, "spec.groups") == want,
           "PrometheusRule: spec.groups differs from deploy/prometheus/avepoint-alerts.yml "
           "(run python3 deploy/kubernetes/generate-prometheusrule.py)")


def snake(key):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def to_prom_relabel(r):
    return {snake(k): v for k, v in r.items()}


def prometheus_config(sm, sc):
    """The jobs prometheus-operator would generate, roughly, for promtool."""
    ep = get(sm, "spec.endpoints.0", {})
    monitor_job = {
        "job_name": "serviceMonitor",
        "scrape_interval": ep.get("interval"),
        "scrape_timeout": ep.get("scrapeTimeout"),
        "metrics_path": ep.get("path"),
        "static_configs": [{"targets": [f"127.0.0.1:{PORT}"]}],
        "metric_relabel_configs": [to_prom_relabel(r) for r in ep.get("metricRelabelings", [])],
    }
    spec = sc.get("spec", {})
    probe_job = {
        "job_name": "scrapeConfig",
        "scrape_interval": spec.get("scrapeInterval"),
        "scrape_timeout": spec.get("scrapeTimeout"),
        "metrics_path": spec.get("metricsPath"),
        "honor_labels": bool(spec.get("honorLabels", False)),
        "http_sd_configs": [{"url": s.get("url"), "refresh_interval": s.get("refreshInterval", "60s")}
                            for s in spec.get("httpSDConfigs", [])],
        "relabel_configs": [to_prom_relabel(r) for r in spec.get("relabelings", [])],
    }
    return {"scrape_configs": [monitor_job, probe_job]}


def check(rendered, prom_out):
    docs = load(rendered)
    check_common(docs)
    dep, svc, sa = by_kind(docs, "Deployment"), by_kind(docs, "Service"), by_kind(docs, "ServiceAccount")
    cm, secret = by_kind(docs, "ConfigMap"), by_kind(docs, "Secret")
    sm, sc, pr = by_kind(docs, "ServiceMonitor"), by_kind(docs, "ScrapeConfig"), by_kind(docs, "PrometheusRule")
    check_deployment(dep, cm, secret, sa)
    check_secret_placeholder(secret)
    check_service(svc, dep)
    check_servicemonitor(sm, svc)
    check_scrapeconfig(sc, svc)
    check_prometheusrule(pr)
    Path(prom_out).write_text(yaml.safe_dump(prometheus_config(sm, sc), sort_keys=False), encoding="utf-8")
    return report(f"{len(docs)} objects")


def overlay(rendered):
    """The test overlay replaced config and secret; the Deployment follows."""
    docs = load(rendered)
    dep, cm, secret = by_kind(docs, "Deployment"), by_kind(docs, "ConfigMap"), by_kind(docs, "Secret")
    config = yaml.safe_load((cm.get("data") or {}).get("avepoint.yml", "")) or {}
    expect(get(config, "avepoint.client_id") == "11111111-2222-3333-4444-555555555555",
           "overlay: the ConfigMap still holds the base's avepoint.yml")
    value = base64.b64decode((secret.get("data") or {}).get("client-secret", "")).decode().strip()
    expect(value == "overlay-test-secret", "overlay: the Secret still holds the base's placeholder")
    vols = {v["name"]: v for v in get(dep, "spec.template.spec.volumes", [])}
    expect(get(vols.get("config", {}), "configMap.name") == get(cm, "metadata.name"),
           "overlay: the Deployment does not mount the replaced ConfigMap")
    expect(get(vols.get("client-secret", {}), "secret.secretName") == get(secret, "metadata.name"),
           "overlay: the Deployment does not mount the replaced Secret")
    return report("overlay")


DASHBOARD = ROOT / "dashboards" / "avepoint-scan-profiles.json"
LAST_APPLIED_LIMIT = 262144
# A ConfigMap (like any object in etcd) holds at most 1 MiB.
CONFIGMAP_LIMIT = 1048576
# Where the dashboard's kubectl apply is documented: past half the annotation
# limit, each such command must use --server-side (no last-applied annotation).
APPLY_DOCS = [ROOT / "deploy" / "kubernetes" / "grafana-dashboard" / "kustomization.yaml",
              ROOT / "README.md", ROOT / "docs" / "dashboard-and-alerts.md"]


def client_side_applies():
    """Documented `kubectl apply` commands of the dashboard without --server-side."""
    out = []
    for path in APPLY_DOCS:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "kubectl apply" in line and "grafana-dashboard" in line and "--server-side" not in line:
                out.append(f"{path.relative_to(ROOT)}:{n}")
    return out


def dashboard(rendered):
    import json
    docs = load(rendered)
    if not expect(len(docs) == 1 and docs[0].get("kind") == "ConfigMap",
                  f"want exactly one ConfigMap, got {[d.get('kind') for d in docs]}"):
        return report("dashboard")
    cm = docs[0]
    name = get(cm, "metadata.name")
    expect(name == "avepoint-exporter-dashboard",
           f"ConfigMap name {name!r}: want avepoint-exporter-dashboard, no hash suffix (a suffix "
           "leaves old copies behind for the sidecar to load)")
    expect(bool(get(cm, "metadata.namespace")), "ConfigMap: no namespace")
    labels = get(cm, "metadata.labels", {}) or {}
    expect(labels.get("grafana_dashboard") == "1",
           f"ConfigMap: label grafana_dashboard must be \"1\" (the sidecar's default), got {labels.get('grafana_dashboard')!r}")
    expect(labels.get("app.kubernetes.io/part-of") == "avepoint-exporter",
           "ConfigMap: missing label app.kubernetes.io/part-of=avepoint-exporter")
    expect(bool((get(cm, "metadata.annotations", {}) or {}).get("grafana_folder")),
           "ConfigMap: annotation grafana_folder missing")
    data = cm.get("data") or {}
    expect(list(data) == [DASHBOARD.name], f"ConfigMap keys {list(data)}, want [{DASHBOARD.name!r}]")
    text = data.get(DASHBOARD.name, "")
    expect(text == DASHBOARD.read_text(encoding="utf-8"),
           f"ConfigMap {DASHBOARD.name} differs from dashboards/{DASHBOARD.name}: "
           "cp dashboards/avepoint-scan-profiles.json deploy/kubernetes/grafana-dashboard/")
    try:
        uid = json.loads(text).get("uid")
    except ValueError as e:
        uid = None
        expect(False, f"ConfigMap {DASHBOARD.name}: not JSON: {e}")
    expect(uid == "avepoint-scan-profiles", f"dashboard uid {uid!r}")
    size = len(text.encode("utf-8"))
    expect(size < CONFIGMAP_LIMIT // 2,
           f"dashboard is {size} bytes: a ConfigMap holds at most {CONFIGMAP_LIMIT}; keep it under half of that")
    if size >= LAST_APPLIED_LIMIT // 2:
        # kubectl apply (client-side) stores the object again in an annotation
        # limited to LAST_APPLIED_LIMIT bytes: too close, so --server-side.
        bad = client_side_applies()
        expect(not bad,
               f"dashboard is {size} bytes: kubectl apply (client-side) stores it again in an annotation "
               f"limited to {LAST_APPLIED_LIMIT} bytes; document `kubectl apply --server-side` at {', '.join(bad)}")
    print(f"dashboard ConfigMap {get(cm, 'metadata.namespace')}/{name}: {size} bytes, labels {labels}")
    return report("dashboard")


def report(what):
    for e in errors:
        print(f"  FAIL: {e}")
    if errors:
        print(f"kubernetes_lint: {len(errors)} problem(s) in {what}")
        return 1
    print(f"kubernetes_lint: {what} ok")
    return 0


def main(argv):
    if len(argv) == 4 and argv[0] == "split":
        return split(*argv[1:])
    if len(argv) == 3 and argv[0] == "check":
        return check(*argv[1:])
    if len(argv) == 2 and argv[0] == "overlay":
        return overlay(argv[1])
    if len(argv) == 2 and argv[0] == "dashboard":
        return dashboard(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
