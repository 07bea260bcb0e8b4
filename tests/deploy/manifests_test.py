"""Checks deploy/kubernetes and the Dockerfile field by field.

Parses every manifest the kustomization lists (and the ConfigMap its
generator makes) and asserts what a deployment of fanprobe relies on: native
gRPC probes, resources, a hardened security context, a termination grace
above the server's --shutdown_grace, both Services, the autoscaler, the
disruption budget, a NetworkPolicy that keeps probes away from the cloud
metadata address, and a flags file the real server accepts; the six
app.kubernetes.io labels on every object and one selector everywhere; and
the Prometheus Operator component (components/prometheus-operator): its
ServiceMonitor selects one Service's metrics port, its Probe names a
shipped module and the Service's port, its PrometheusRule is
deploy/prometheus/rules/fanprobe.yml and promtool accepts it.

Run by ctest (tests/deploy/CMakeLists.txt) with Debian's python3 and
python3-yaml:
  FANPROBE_REPO=. FANPROBE_SERVER=build/fanprobe-server \
    /usr/bin/python3 tests/deploy/manifests_test.py
FANPROBE_SERVER is optional (the flag checks are skipped without it); so is
kubectl (the `kubectl kustomize` cross-checks are skipped without it; Debian
12's kubernetes-client is kubectl 1.20, whose kustomize predates components,
so it needs a newer kubectl); so is promtool (Debian's prometheus).
"""

import ipaddress
import os
import pathlib
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import yaml

REPO = pathlib.Path(
    os.environ.get("FANPROBE_REPO", pathlib.Path(__file__).resolve().parents[2]))
K8S = REPO / "deploy" / "kubernetes"
OPERATOR = K8S / "components" / "prometheus-operator"
RULES = REPO / "deploy" / "prometheus" / "rules" / "fanprobe.yml"
SERVER = os.environ.get("FANPROBE_SERVER", "")

GRPC_PORT = 50051
HTTP_PORT = 9116
METADATA = [ipaddress.ip_network("169.254.169.254/32")]


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return list(d for d in yaml.safe_load_all(f) if d is not None)


def kustomization():
    (k,) = load_yaml(K8S / "kustomization.yaml")
    return k


def apply_labels(k, objects):
    """The kustomization's `labels:` transformer, as kustomize applies it
    with includeSelectors: false: to metadata, and to pod templates when
    includeTemplates is set."""
    for entry in k.get("labels", []):
        assert entry.get("includeSelectors") is False, \
            "selectors are written out in the manifests"
        for o in objects:
            o["metadata"].setdefault("labels", {}).update(entry["pairs"])
            template = o.get("spec", {}).get("template")
            if entry.get("includeTemplates") and template is not None:
                template["metadata"].setdefault("labels", {}).update(
                    entry["pairs"])
    return objects


def render():
    """The objects `kubectl apply -k` creates, without the hash suffixes."""
    k = kustomization()
    objects = []
    for resource in k["resources"]:
        objects.extend(load_yaml(K8S / resource))
    for gen in k.get("configMapGenerator", []):
        data = {}
        for entry in gen["files"]:
            key, _, path = entry.partition("=")
            if not path:
                key, path = pathlib.Path(key).name, key
            data[key] = (K8S / path).read_text(encoding="utf-8")
        labels = dict(gen.get("options", {}).get("labels", {}))
        objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": gen["name"], "labels": labels},
                        "data": data})
    return apply_labels(k, objects)


def component():
    (k,) = load_yaml(OPERATOR / "kustomization.yaml")
    return k


def render_component():
    """The Prometheus Operator component's own objects, as an overlay that
    adds it to deploy/kubernetes creates them."""
    k = component()
    objects = []
    for resource in k["resources"]:
        objects.extend(load_yaml(OPERATOR / resource))
    return apply_labels(k, objects)


def project_version():
    m = re.search(r"^project\(fanprobe VERSION (\S+)",
                  (REPO / "CMakeLists.txt").read_text(), re.M)
    return m.group(1)


def duration_seconds(text):
    """An absl duration such as 20s, 1m30s or 500ms, in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text}")
    return sum(float(n) * units[u] for n, u in parts)


def quantity_cpu(text):
    text = str(text)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def server_flags():
    """{name: value} of config/server.flags."""
    flags = {}
    for line in (K8S / "config" / "server.flags").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"--([a-z_]+)=(.*)", line)
        assert m, f"server.flags: not --name=value: {line!r}"
        flags[m.group(1)] = m.group(2)
    return flags


# What every selector of deploy/kubernetes matches on.
SELECTOR = {"app.kubernetes.io/name": "fanprobe",
            "app.kubernetes.io/instance": "fanprobe"}


def check_recommended_labels(test, labels, component):
    """The six app.kubernetes.io labels, with this project's values."""
    test.assertEqual(labels.get("app.kubernetes.io/name"), "fanprobe")
    test.assertEqual(labels.get("app.kubernetes.io/instance"), "fanprobe")
    test.assertEqual(labels.get("app.kubernetes.io/component"), component)
    test.assertEqual(labels.get("app.kubernetes.io/part-of"), "fanprobe")
    test.assertEqual(labels.get("app.kubernetes.io/version"), project_version())
    test.assertEqual(labels.get("app.kubernetes.io/managed-by"), "kustomize")


class ManifestsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.objects = render()
        cls.by_kind = {}
        for o in cls.objects:
            cls.by_kind.setdefault(o["kind"], []).append(o)
        (cls.deployment,) = cls.by_kind["Deployment"]
        cls.pod = cls.deployment["spec"]["template"]["spec"]
        (cls.container,) = cls.pod["containers"]
        cls.pod_labels = cls.deployment["spec"]["template"]["metadata"]["labels"]
        cls.flags = server_flags()

    def selects_pods(self, match_labels):
        self.assertTrue(match_labels, "an empty selector selects every pod")
        for key, value in match_labels.items():
            self.assertEqual(self.pod_labels.get(key), value, key)

    def test_every_manifest_is_listed_and_parses(self):
        listed = set(kustomization()["resources"])
        on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
        self.assertEqual(listed, on_disk)
        for o in self.objects:
            self.assertIn("apiVersion", o)
            self.assertTrue(o["metadata"]["name"])
        kinds = sorted(o["kind"] for o in self.objects)
        self.assertEqual(kinds, sorted([
            "ConfigMap", "Deployment", "HorizontalPodAutoscaler",
            "NetworkPolicy", "PodDisruptionBudget", "Service", "Service",
            "ServiceAccount"]))

    def test_deployment_selects_its_pods(self):
        self.selects_pods(self.deployment["spec"]["selector"]["matchLabels"])

    def test_every_object_and_the_pods_carry_the_recommended_labels(self):
        for o in self.objects:
            with self.subTest(kind=o["kind"], name=o["metadata"]["name"]):
                check_recommended_labels(self, o["metadata"]["labels"], "server")
        check_recommended_labels(self, self.pod_labels, "server")

    def test_every_selector_is_name_and_instance(self):
        """One selector everywhere: a second instance (another
        app.kubernetes.io/instance) shares none of its pods with this one."""
        (service, headless) = sorted(self.by_kind["Service"],
                                     key=lambda s: s["metadata"]["name"])
        (pdb,) = self.by_kind["PodDisruptionBudget"]
        (np,) = self.by_kind["NetworkPolicy"]
        selectors = {
            "Deployment": self.deployment["spec"]["selector"]["matchLabels"],
            "Service fanprobe": service["spec"]["selector"],
            "Service fanprobe-headless": headless["spec"]["selector"],
            "PodDisruptionBudget": pdb["spec"]["selector"]["matchLabels"],
            "NetworkPolicy": np["spec"]["podSelector"]["matchLabels"],
        }
        for i, spread in enumerate(self.pod["topologySpreadConstraints"]):
            selectors[f"topologySpreadConstraints[{i}]"] = \
                spread["labelSelector"]["matchLabels"]
        for where, selector in selectors.items():
            with self.subTest(selector=where):
                self.assertEqual(selector, SELECTOR)

    def test_native_grpc_probes(self):
        for probe in ("livenessProbe", "readinessProbe"):
            with self.subTest(probe=probe):
                self.assertEqual(self.container[probe]["grpc"]["port"], GRPC_PORT)
        ready = self.container["readinessProbe"]["grpc"]
        self.assertEqual(ready.get("service"), "fanprobe.v1.Prober")

    def test_ports(self):
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.assertEqual(ports, {"grpc": GRPC_PORT, "http-metrics": HTTP_PORT})

    def test_resources(self):
        res = self.container["resources"]
        for part in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                with self.subTest(part=part, resource=resource):
                    self.assertIn(resource, res[part])
        self.assertLessEqual(quantity_cpu(res["requests"]["cpu"]),
                             quantity_cpu(res["limits"]["cpu"]))
        # The server counts the node's cores when --workers is 0.
        self.assertEqual(int(self.flags["workers"]),
                         int(quantity_cpu(res["limits"]["cpu"])))

    def test_security_context(self):
        pod_sc = self.pod["securityContext"]
        sc = self.container["securityContext"]
        self.assertIs(pod_sc["runAsNonRoot"], True)
        self.assertIs(sc["runAsNonRoot"], True)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertNotIn("add", sc["capabilities"])
        self.assertIs(sc.get("privileged", False), False)
        self.assertEqual(pod_sc["seccompProfile"]["type"], "RuntimeDefault")
        self.assertIs(self.pod["automountServiceAccountToken"], False)
        # The uid the image runs as (runAsNonRoot needs a numeric one).
        user = re.search(r"^USER\s+(\d+)", (REPO / "Dockerfile").read_text(),
                         re.M).group(1)
        self.assertEqual(pod_sc["runAsUser"], int(user))

    def test_termination_grace_outlasts_the_drain(self):
        grace = duration_seconds(self.flags["shutdown_grace"])
        termination = self.pod["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(termination, grace + 5)
        # Liveness fails while draining (NOT_SERVING); it must not restart
        # the container before the drain ends.
        live = self.container["livenessProbe"]
        self.assertGreaterEqual(live["periodSeconds"] * live["failureThreshold"],
                                termination)

    def test_config_map_carries_the_flags(self):
        (cm,) = self.by_kind["ConfigMap"]
        self.assertEqual(set(cm["data"]), {"server.flags", "modules.yaml"})
        yaml.safe_load(cm["data"]["modules.yaml"])
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in self.container["volumeMounts"]}
        (flagfile,) = [a for a in self.container["args"]
                       if a.startswith("--flagfile=")]
        path = pathlib.PurePosixPath(flagfile.split("=", 1)[1])
        volume = volumes[mounts[str(path.parent)]]
        self.assertEqual(volume["configMap"]["name"], cm["metadata"]["name"])
        self.assertIn(path.name, cm["data"])
        self.assertEqual(self.flags["grpc_address"], f"0.0.0.0:{GRPC_PORT}")

    def test_image_is_set_by_the_kustomization(self):
        images = {i["name"]: i for i in kustomization()["images"]}
        self.assertIn(self.container["image"], images)

    def test_services(self):
        services = {s["metadata"]["name"]: s["spec"] for s in self.by_kind["Service"]}
        self.assertEqual(set(services), {"fanprobe", "fanprobe-headless"})
        self.assertNotEqual(services["fanprobe"].get("clusterIP"), "None")
        self.assertEqual(services["fanprobe-headless"]["clusterIP"], "None")
        container_ports = {p["name"] for p in self.container["ports"]}
        for name, spec in services.items():
            with self.subTest(service=name):
                self.selects_pods(spec["selector"])
                ports = {p["name"]: p for p in spec["ports"]}
                self.assertEqual(ports["grpc"]["port"], GRPC_PORT)
                self.assertEqual(ports["http-metrics"]["port"], HTTP_PORT)
                for p in ports.values():
                    self.assertIn(p["targetPort"], container_ports)

    def test_autoscaler(self):
        (hpa,) = self.by_kind["HorizontalPodAutoscaler"]
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        spec = hpa["spec"]
        self.assertEqual(spec["scaleTargetRef"]["kind"], "Deployment")
        self.assertEqual(spec["scaleTargetRef"]["name"],
                         self.deployment["metadata"]["name"])
        self.assertGreaterEqual(spec["minReplicas"], 2)
        self.assertGreater(spec["maxReplicas"], spec["minReplicas"])
        (metric,) = spec["metrics"]
        self.assertEqual(metric["resource"]["name"], "cpu")

    def test_disruption_budget(self):
        (pdb,) = self.by_kind["PodDisruptionBudget"]
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        spec = pdb["spec"]
        self.selects_pods(spec["selector"]["matchLabels"])
        # A budget that never allows an eviction blocks node drains.
        (hpa,) = self.by_kind["HorizontalPodAutoscaler"]
        if "maxUnavailable" in spec:
            self.assertGreaterEqual(spec["maxUnavailable"], 1)
        else:
            self.assertLess(spec["minAvailable"], hpa["spec"]["minReplicas"])

    def test_network_policy_blocks_the_metadata_address(self):
        (np,) = self.by_kind["NetworkPolicy"]
        spec = np["spec"]
        self.selects_pods(spec["podSelector"]["matchLabels"])
        self.assertIn("Egress", spec["policyTypes"])
        egress = spec["egress"]
        allows_public_v4 = False
        for rule in egress:
            # A rule without `to` allows every destination.
            self.assertIn("to", rule)
            for peer in rule["to"]:
                block = peer.get("ipBlock")
                if block is None:
                    # Peers selected by labels (cluster DNS) get DNS only.
                    self.assertEqual({p["port"] for p in rule["ports"]}, {53})
                    continue
                cidr = ipaddress.ip_network(block["cidr"])
                excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
                for meta in METADATA:
                    if meta.version == cidr.version and meta.subnet_of(cidr):
                        self.assertTrue(
                            any(meta.subnet_of(e) for e in excepted
                                if e.version == meta.version),
                            f"{cidr} lets probes reach {meta}")
                if cidr == ipaddress.ip_network("0.0.0.0/0"):
                    allows_public_v4 = True
        self.assertTrue(allows_public_v4, "egress must allow probes")
        ingress_ports = {p["port"] for r in spec["ingress"] for p in r["ports"]}
        self.assertEqual(ingress_ports, {GRPC_PORT, HTTP_PORT})

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl not installed")
    def test_kubectl_kustomize_renders_the_same_objects(self):
        out = subprocess.run(["kubectl", "kustomize", str(K8S)], check=True,
                             capture_output=True, text=True, timeout=60).stdout
        rendered = [o for o in yaml.safe_load_all(out) if o]
        names = sorted((o["kind"], re.sub(r"-[a-z0-9]{10}$", "", o["metadata"]["name"])
                        if o["kind"] == "ConfigMap" else o["metadata"]["name"])
                       for o in rendered)
        self.assertEqual(names, sorted((o["kind"], o["metadata"]["name"])
                                       for o in self.objects))
        (deployment,) = [o for o in rendered if o["kind"] == "Deployment"]
        (cm,) = [o for o in rendered if o["kind"] == "ConfigMap"]
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        self.assertIn(cm["metadata"]["name"],
                      [v["configMap"]["name"] for v in volumes if "configMap" in v])


class PrometheusOperatorComponentTest(unittest.TestCase):
    """components/prometheus-operator: a ServiceMonitor, a Probe and a
    PrometheusRule that match the base they are added to."""

    @classmethod
    def setUpClass(cls):
        cls.base = render()
        cls.objects = render_component()
        cls.by_kind = {o["kind"]: o for o in cls.objects}
        cls.services = {o["metadata"]["name"]: o for o in cls.base
                        if o["kind"] == "Service"}

    def test_a_component_listing_every_manifest(self):
        k = component()
        self.assertEqual(k["kind"], "Component")
        self.assertEqual(k["apiVersion"], "kustomize.config.k8s.io/v1alpha1")
        on_disk = {p.name for p in OPERATOR.glob("*.yaml")} - {"kustomization.yaml"}
        self.assertEqual(set(k["resources"]), on_disk)
        self.assertEqual(sorted(self.by_kind),
                         ["Probe", "PrometheusRule", "ServiceMonitor"])
        self.assertEqual(len(self.objects), 3)
        for o in self.objects:
            self.assertEqual(o["apiVersion"], "monitoring.coreos.com/v1")
        # The same shared labels as the base, so an overlay's objects agree.
        self.assertEqual(k["labels"], kustomization()["labels"])

    def test_every_object_carries_the_recommended_labels(self):
        for o in self.objects:
            with self.subTest(kind=o["kind"]):
                check_recommended_labels(self, o["metadata"]["labels"],
                                         "monitoring")

    def test_service_monitor_selects_one_service_per_replica(self):
        spec = self.by_kind["ServiceMonitor"]["spec"]
        selector = spec["selector"]["matchLabels"]
        self.assertLessEqual(SELECTOR.items(), selector.items())
        selected = [name for name, s in self.services.items()
                    if selector.items() <= s["metadata"]["labels"].items()]
        # Both Services have the same endpoints: two would scrape every pod
        # twice.  The headless one has no virtual IP to hide replicas behind.
        self.assertEqual(selected, ["fanprobe-headless"])
        service = self.services["fanprobe-headless"]
        (endpoint,) = spec["endpoints"]
        self.assertIn(endpoint["port"],
                      [p["name"] for p in service["spec"]["ports"]])
        self.assertEqual(endpoint["path"], "/metrics")
        self.assertEqual(endpoint.get("scheme", "http"), "http")
        # job = the value of the Service's jobLabel: the rules' "fanprobe".
        self.assertEqual(service["metadata"]["labels"][spec["jobLabel"]],
                         "fanprobe")
        self.assertIn('up{job="fanprobe"}', RULES.read_text())

    def test_probe_asks_fanprobe_with_a_shipped_module(self):
        spec = self.by_kind["Probe"]["spec"]
        m = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc:(\d+)",
                         spec["prober"]["url"])
        self.assertTrue(m, spec["prober"]["url"])
        service = self.services[m.group(1)]
        ports = {p["port"]: p["name"] for p in service["spec"]["ports"]}
        self.assertEqual(ports.get(int(m.group(3))), "http-metrics")
        self.assertEqual(self.flags_http_port(), int(m.group(3)))
        self.assertEqual(spec["prober"].get("path", "/probe"), "/probe")
        self.assertEqual(spec["prober"].get("scheme", "http"), "http")
        modules = yaml.safe_load((K8S / "config" / "modules.yaml").read_text())
        self.assertIn(spec["module"], modules["modules"])
        # ProbeNotAnswered covers the job.
        self.assertRegex(spec["jobName"], r"^fanprobe_.+$")
        static = spec["targets"]["staticConfig"]["static"]
        self.assertTrue(static)
        for target in static:
            self.assertRegex(target, r"^https?://")

    def flags_http_port(self):
        return int(server_flags()["http_address"].rsplit(":", 1)[1])

    def test_prometheus_rule_is_the_rules_file(self):
        spec = self.by_kind["PrometheusRule"]["spec"]
        (rules,) = load_yaml(RULES)
        self.assertEqual(spec, rules)
        alerts = [r["alert"] for g in spec["groups"] for r in g["rules"]]
        for alert in ("ProbeFailing", "ProbeNotAnswered", "FanprobeDown"):
            self.assertIn(alert, alerts)

    @unittest.skipUnless(shutil.which("promtool"),
                         "promtool not installed (apt-get install prometheus)")
    def test_promtool_accepts_the_prometheus_rule_groups(self):
        spec = self.by_kind["PrometheusRule"]["spec"]
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "fanprobe.rules.yml"
            path.write_text(yaml.safe_dump({"groups": spec["groups"]}))
            run = subprocess.run(["promtool", "check", "rules", str(path)],
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        count = sum(len(g["rules"]) for g in spec["groups"])
        self.assertIn(f"SUCCESS: {count} rules found", run.stdout + run.stderr)

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl not installed")
    def test_kubectl_kustomize_renders_base_and_component(self):
        """Both ways to use the component: an overlay with a namespace, and
        `kustomize edit add component` in deploy/kubernetes itself."""
        with tempfile.TemporaryDirectory() as tmp:
            base = pathlib.Path(tmp) / "kubernetes"
            shutil.copytree(K8S, base)
            overlay = pathlib.Path(tmp) / "overlay"
            overlay.mkdir()
            (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
                "namespace": "probes",
                "resources": ["../kubernetes"],
                "components": ["../kubernetes/components/prometheus-operator"],
            }))
            in_overlay = self.kustomize(overlay)
            k = yaml.safe_load((base / "kustomization.yaml").read_text())
            k["components"] = ["components/prometheus-operator"]
            (base / "kustomization.yaml").write_text(yaml.safe_dump(k))
            in_base = self.kustomize(base)
        for rendered, where in ((in_overlay, "overlay"), (in_base, "base")):
            with self.subTest(where=where):
                kinds = sorted(o["kind"] for o in rendered)
                self.assertEqual(kinds, sorted(
                    [o["kind"] for o in self.base] + list(self.by_kind)))
                for o in rendered:
                    component = ("monitoring" if o["kind"] in self.by_kind
                                 else "server")
                    check_recommended_labels(self, o["metadata"]["labels"],
                                             component)
        for o in in_overlay:
            self.assertEqual(o["metadata"]["namespace"], "probes")
        (rule,) = [o for o in in_overlay if o["kind"] == "PrometheusRule"]
        self.assertEqual(rule["spec"], self.by_kind["PrometheusRule"]["spec"])

    @staticmethod
    def kustomize(path):
        out = subprocess.run(["kubectl", "kustomize", str(path)], check=True,
                             capture_output=True, text=True, timeout=60).stdout
        return [o for o in yaml.safe_load_all(out) if o]


class DockerfileTest(unittest.TestCase):
    """The image contract the manifests and deploy/README.md rely on."""

    @classmethod
    def setUpClass(cls):
        text = (REPO / "Dockerfile").read_text()
        text = re.sub(r"\\\n", " ", text)  # join continuation lines
        cls.lines = [l.strip() for l in text.splitlines()
                     if l.strip() and not l.strip().startswith("#")]

    def instructions(self, name):
        return [l[len(name):].strip() for l in self.lines
                if l.split(None, 1)[0].upper() == name]

    def test_build_on_bookworm_run_on_slim(self):
        froms = self.instructions("FROM")
        self.assertEqual(len(froms), 2)
        self.assertRegex(froms[0], r"AS build$")
        args = dict(a.split("=", 1) for a in self.instructions("ARG") if "=" in a)
        self.assertEqual(args["DEBIAN_IMAGE"], "debian:bookworm")
        self.assertEqual(args["DEBIAN_SLIM_IMAGE"], "debian:bookworm-slim")
        self.assertEqual(froms[1], "${DEBIAN_SLIM_IMAGE}")

    def test_non_root_user(self):
        (user,) = self.instructions("USER")
        self.assertRegex(user, r"^[1-9]\d*:[1-9]\d*$")

    def test_ports_healthcheck_and_exec_form_entrypoint(self):
        (expose,) = self.instructions("EXPOSE")
        self.assertEqual(expose.split(), [str(GRPC_PORT), str(HTTP_PORT)])
        (health,) = self.instructions("HEALTHCHECK")
        self.assertRegex(health, r'CMD \["/usr/local/bin/fanprobe", "health"')
        # Exec form: the server is PID 1 and receives SIGTERM itself.
        (entry,) = self.instructions("ENTRYPOINT")
        self.assertEqual(entry, '["/usr/local/bin/fanprobe-server"]')
        (cmd,) = self.instructions("CMD")
        self.assertEqual(cmd, f'["--grpc_address=0.0.0.0:{GRPC_PORT}", '
                              f'"--http_address=0.0.0.0:{HTTP_PORT}"]')
        self.assertEqual(self.instructions("STOPSIGNAL"), ["SIGTERM"])

    def test_oci_labels(self):
        labels = " ".join(self.instructions("LABEL"))
        for key in ("title", "description", "version", "revision", "created"):
            self.assertIn(f"org.opencontainers.image.{key}=", labels)

    def test_dockerignore_keeps_build_trees_out(self):
        ignored = (REPO / ".dockerignore").read_text().split()
        for entry in (".git", "build", "tests", "deploy"):
            self.assertIn(entry, ignored)


@unittest.skipUnless(SERVER, "FANPROBE_SERVER not set")
class ServerFlagsTest(unittest.TestCase):
    """config/server.flags against the real fanprobe-server."""

    def test_every_flag_exists(self):
        out = subprocess.run([SERVER, "--helpfull"], capture_output=True,
                             text=True, timeout=30)
        known = set(re.findall(r"^\s+--([a-z_]+) \(", out.stdout + out.stderr, re.M))
        self.assertIn("grpc_address", known)
        for name in server_flags():
            with self.subTest(flag=name):
                self.assertIn(name, known)

    def test_server_starts_with_the_flagfile_and_drains_on_sigterm(self):
        proc = subprocess.Popen(
            [SERVER, f"--flagfile={K8S / 'config' / 'server.flags'}",
             # The pod's ports and paths, moved to this machine.
             "--grpc_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
             f"--modules_file={K8S / 'config' / 'modules.yaml'}",
             "--shutdown_grace=1s"],
            stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            line = ""
            while '"listening"' not in line:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "no listening line")
                ready, _, _ = select.select([proc.stderr], [], [], left)
                if ready:
                    line = proc.stderr.readline()
                    self.assertTrue(line, f"exited with {proc.poll()}")
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=20), 0)
            self.assertIn('"stopped"', proc.stderr.read())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
