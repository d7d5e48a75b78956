"""Lints and renders the Helm chart without a helm binary or a cluster.

    helm_chart.py lint CHART
    helm_chart.py render CHART OUT_DIR SCENARIO=VALUES_FILE... [--expect-failure SCENARIO=VALUES_FILE=TEXT]

`lint` is Helm's own lint (helm-sdkpy embeds Helm); warnings and errors fail.

`render` is `helm template`: helm-sdkpy exposes no template action, only
actions that talk to a cluster, so it runs `Install` (release storage in
memory: HELM_DRIVER=memory) against a minimal fake Kubernetes API server on
loopback that answers discovery for the kinds the chart uses, reports "not
found" for every lookup and accepts every create. The rendered manifest comes
back in the release; nothing leaves this machine. It writes
OUT_DIR/<scenario>.yaml per scenario; VALUES_FILE "-" means the chart's
defaults. An --expect-failure scenario must fail to render with an error
containing TEXT.
"""

import asyncio
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

# Helm reads HELM_DRIVER from the environment the process started with, so
# set it by starting again.
if os.environ.get("HELM_DRIVER") != "memory":
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "HELM_DRIVER": "memory"})

import helm_sdkpy  # noqa: E402  (after the HELM_DRIVER check)

KUBE_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}

# group -> version -> [(plural, kind, namespaced)]
RESOURCES = {
    "": {
        "v1": [
            ("configmaps", "ConfigMap", True),
            ("secrets", "Secret", True),
            ("services", "Service", True),
            ("serviceaccounts", "ServiceAccount", True),
            ("persistentvolumeclaims", "PersistentVolumeClaim", True),
            ("pods", "Pod", True),
            ("namespaces", "Namespace", False),
        ]
    },
    "apps": {"v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)]},
    "autoscaling": {"v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)]},
    "networking.k8s.io": {
        "v1": [("ingresses", "Ingress", True), ("networkpolicies", "NetworkPolicy", True)]
    },
    "policy": {"v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)]},
}


def resource_list(group_version, items):
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
            for plural, kind, namespaced in items
        ],
    }


class FakeApiServer(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/version":
            return self.reply(200, KUBE_VERSION)
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = []
            for group, versions in RESOURCES.items():
                if not group:
                    continue
                listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
                groups.append({"name": group, "versions": listed, "preferredVersion": listed[0]})
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path == "/api/v1":
            return self.reply(200, resource_list("v1", RESOURCES[""]["v1"]))
        match = re.fullmatch(r"/apis/([^/]+)/([^/]+)", path)
        if match and match.group(2) in RESOURCES.get(match.group(1), {}):
            group, version = match.groups()
            return self.reply(200, resource_list(f"{group}/{version}", RESOURCES[group][version]))
        # Any object (template `lookup`, Helm's existence checks): not found.
        return self.reply(404, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "reason": "NotFound", "code": 404,
                                "message": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        body.setdefault("metadata", {}).update(uid="00000000-0000-0000-0000-000000000000",
                                               resourceVersion="1")
        self.reply(201, body)

    do_PUT = do_POST
    do_PATCH = do_POST


def kubeconfig(port):
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                  "namespace": "openheim"}}],
        "users": [{"name": "fake", "user": {"token": "fake"}}],
        "current-context": "fake",
    })


def render(port, chart, values_file, release):
    values = {}
    if values_file != "-":
        with open(values_file) as f:
            values = yaml.safe_load(f) or {}
    config = helm_sdkpy.Configuration(namespace="openheim", kubeconfig=kubeconfig(port))
    release = asyncio.run(helm_sdkpy.Install(config).run(
        release, chart, values=values, wait=False, timeout=60))
    return release["manifest"]


LINT_SEVERITIES = {1: "info", 2: "warning", 3: "error"}


def lint(chart):
    config = helm_sdkpy.Configuration(namespace="openheim")
    result = asyncio.run(helm_sdkpy.Lint(config).run(chart))
    failed = False
    for message in result.get("Messages") or []:
        severity = message.get("Severity", 3)
        # helm-sdkpy serialises most Go errors as {}: show what there is.
        text = message.get("Err") if isinstance(message.get("Err"), str) else ""
        where = message.get("Path") or chart
        label = LINT_SEVERITIES.get(severity, str(severity))
        if severity >= 2:
            failed = True
            print(f"  FAIL helm lint: {label} in {where} {text}".rstrip())
        else:
            print(f"  note helm lint: {label} in {where} {text}".rstrip())
    if result.get("Errors"):
        failed = True
    if not failed:
        print(f"  ok   helm lint {chart}")
    return not failed


def render_all(chart, out_dir, specs):
    os.makedirs(out_dir, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    failed = False
    args = iter(specs)
    for arg in args:
        expect = None
        if arg == "--expect-failure":
            arg, expect = next(args).rsplit("=", 1)
        scenario, values_file = arg.split("=", 1)
        # "openheim" exercises the short full name, the others the prefixed one.
        release = "openheim" if scenario == "default" else f"t-{scenario}"[:40]
        try:
            manifest = render(port, chart, values_file, release)
        except Exception as e:  # noqa: BLE001 - report any Helm failure
            if expect is not None and expect in str(e):
                print(f"  ok   render {scenario}: refused as expected ({expect!r})")
                continue
            print(f"  FAIL render {scenario}: {e}")
            failed = True
            continue
        if expect is not None:
            print(f"  FAIL render {scenario}: rendered, but should have failed with {expect!r}")
            failed = True
            continue
        path = os.path.join(out_dir, f"{scenario}.yaml")
        with open(path, "w") as f:
            f.write(manifest)
        count = sum(1 for d in yaml.safe_load_all(manifest) if d)
        print(f"  ok   render {scenario}: {count} objects -> {path}")
    server.shutdown()
    return not failed


def main(argv):
    if len(argv) >= 2 and argv[0] == "lint":
        ok = lint(argv[1])
    elif len(argv) >= 4 and argv[0] == "render":
        ok = render_all(argv[1], argv[2], argv[3:])
    else:
        sys.exit(__doc__)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
