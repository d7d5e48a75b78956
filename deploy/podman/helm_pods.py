"""Runs the Deployments of a rendered Helm chart under podman, as Kubernetes
would wire them, to prove the chart matches the binaries: one container per
Deployment on one podman network, reachable under the names of the Services
that select it; each with the Deployment's args, env (values, Secret and
ConfigMap references, envFrom), volumes (ConfigMaps and Secrets as files,
emptyDirs as fresh directories, claims as directories prepared for `fsGroup`) and security context (user,
read-only root, dropped capabilities). Then every readiness probe of the
chart (gRPC, HTTP GET, exec) must pass, and the gateway's `/readyz` must name
every backend ready.

usage: helm_pods.py RENDERED.yaml IMAGE REDIS_IMAGE TIMEOUT_SECONDS
Cleans up (containers, network, files) whatever happens.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

PREFIX = "openheim-helm"


def podman(*args, check=True):
    out = subprocess.run(["podman", *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        sys.exit(f"podman {' '.join(args)}: {out.stderr.strip()}")
    return out


def secret_data(obj):
    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    data.update(obj.get("stringData") or {})
    return data


class StandIn(dict):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def __contains__(self, key):
        return True

    def __missing__(self, key):
        return f"stand-in-{self.name}-{key}"


class Chart:
    def __init__(self, path):
        docs = [d for d in yaml.safe_load_all(open(path)) if d]
        self.by_kind = {}
        for d in docs:
            self.by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    def kind(self, kind):
        return self.by_kind.get(kind, {})

    def data(self, kind, name):
        obj = self.kind(kind).get(name)
        if obj is None and kind == "Secret":
            # An existing Secret the values name (created by the operator):
            # a stand-in whose every key reads `stand-in-<secret>-<key>`.
            return StandIn(name)
        if obj is None:
            sys.exit(f"{kind} {name} is referenced but not rendered")
        return secret_data(obj) if kind == "Secret" else dict(obj.get("data") or {})

    def aliases(self, labels):
        return [
            name
            for name, svc in self.kind("Service").items()
            if svc["spec"].get("selector")
            and all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
        ]


def env_args(chart, container):
    args = []
    for source in container.get("envFrom") or []:
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in source:
                for k, v in chart.data(kind, source[key]["name"]).items():
                    args += ["-e", f"{k}={v}"]
    for var in container.get("env") or []:
        if "value" in var:
            args += ["-e", f"{var['name']}={var['value']}"]
            continue
        ref = var.get("valueFrom", {})
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if key in ref:
                data = chart.data(kind, ref[key]["name"])
                if ref[key]["key"] not in data:
                    sys.exit(f"{var['name']}: {kind} {ref[key]['name']} has no key {ref[key]['key']}")
                args += ["-e", f"{var['name']}={data[ref[key]['key']]}"]
    return args


def volume_args(chart, spec, container, files):
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    args = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        ro = ",ro" if mount.get("readOnly") else ""
        target = mount["mountPath"]
        if "emptyDir" in volume:
            # A fresh directory, mode 0777 as the kubelet makes it (podman's
            # --tmpfs takes the image directory's owner and mode instead).
            empty = tempfile.mkdtemp(prefix=f"{mount['name']}-", dir=files)
            os.chmod(empty, 0o777)
            args += ["-v", f"{empty}:{target}"]
        elif "persistentVolumeClaim" in volume:
            claim = os.path.join(files, "claims", volume["persistentVolumeClaim"]["claimName"])
            fs_group = (spec.get("securityContext") or {}).get("fsGroup")
            make_claim(claim, fs_group)
            args += ["-v", f"{claim}:{target}{ro}"]
        else:
            kind = "ConfigMap" if "configMap" in volume else "Secret"
            ref = volume.get("configMap") or volume.get("secret")
            name = ref.get("name") or ref.get("secretName")
            data = chart.data(kind, name)
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            directory = os.path.join(files, f"{kind}-{name}-{mount['name']}")
            os.makedirs(directory, exist_ok=True)
            for item in items:
                path = os.path.join(directory, item["path"])
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(data[item["key"]])
                os.chmod(path, 0o644)
            os.chmod(directory, 0o755)
            source = os.path.join(directory, mount["subPath"]) if mount.get("subPath") else directory
            args += ["-v", f"{source}:{target}:ro"]
    return args


def make_claim(path, fs_group):
    """A directory standing in for a claim, prepared as `fsGroup` has
    Kubernetes prepare a volume: group-owned by it, group-writable, setgid.
    (A bind mount: podman would give a new named volume the ownership of the
    image's directory instead.)"""
    os.makedirs(path, exist_ok=True)
    if fs_group is not None:
        os.chown(path, 0, fs_group)
        os.chmod(path, 0o2775)


def security_args(spec, container):
    pod = spec.get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    user = ctx.get("runAsUser", pod.get("runAsUser"))
    group = ctx.get("runAsGroup", pod.get("runAsGroup"))
    args = []
    if user is not None:
        args += ["--user", f"{user}:{group if group is not None else user}"]
    if pod.get("fsGroup") is not None:
        args += ["--group-add", str(pod["fsGroup"])]
    if ctx.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for cap in (ctx.get("capabilities") or {}).get("drop") or []:
        args += ["--cap-drop", cap]
    if ctx.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    return args


def port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    sys.exit(f"{container['name']}: no port named {port}")


def probe_passes(name, container, probe, address):
    if "grpc" in probe:
        port = port_number(container, probe["grpc"]["port"])
        binary = (container.get("args") or container.get("command"))[0]
        return podman("exec", name, binary, "--health", "--listen", f"127.0.0.1:{port}",
                      check=False).returncode == 0
    if "httpGet" in probe:
        port = port_number(container, probe["httpGet"]["port"])
        try:
            url = f"http://{address}:{port}{probe['httpGet']['path']}"
            with urllib.request.urlopen(url, timeout=5) as response:
                return 200 <= response.status < 400
        except OSError:
            return False
    if "exec" in probe:
        return podman("exec", name, *probe["exec"]["command"], check=False).returncode == 0
    sys.exit(f"{name}: unsupported probe {probe}")


def address_of(name):
    out = podman("inspect", "--format",
                 "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
    return out.stdout.strip()


def run(chart, image, redis_image, timeout, files):
    podman("network", "create", PREFIX)
    started = []
    for name, deployment in chart.kind("Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
        for container in spec["containers"]:
            ours = container["image"].split(":")[0].endswith("openheim")
            cname = f"{PREFIX}_{name}"
            aliases = ",".join(f"alias={a}" for a in chart.aliases(labels))
            network = f"{PREFIX}:{aliases}" if aliases else PREFIX
            # Kubernetes restarts a pod's failed containers.
            args = ["run", "-d", "--name", cname, "--network", network, "--label", PREFIX,
                    "--restart", "always"]
            args += env_args(chart, container) + volume_args(chart, spec, container, files)
            args += security_args(spec, container)
            # Kubernetes: `command` replaces the image's ENTRYPOINT, `args`
            # its CMD (so tini stays PID 1 when only args are given).
            if container.get("command"):
                args += ["--entrypoint", json.dumps(container["command"])]
            args.append(image if ours else redis_image)
            podman(*args, *(container.get("args") or []))
            started.append((cname, container))
    print(f"  started {len(started)} containers: {', '.join(c for c, _ in started)}", flush=True)
    begin = time.monotonic()
    pending = list(started)
    while pending:
        pending = [
            (c, spec) for c, spec in pending
            if not probe_passes(c, spec, spec.get("readinessProbe") or {"exec": {"command": ["true"]}},
                                address_of(c))
        ]
        if time.monotonic() - begin > timeout:
            for c, _ in pending:
                print(f"--- {c}\n{podman('logs', '--tail', '20', c, check=False).stderr}")
            sys.exit(f"readiness probes failing after {timeout:.0f} s: {[c for c, _ in pending]}")
        if pending:
            time.sleep(1)
    print(f"  every readiness probe passes after {time.monotonic() - begin:.1f} s", flush=True)
    gateway = next(c for c, spec in started if spec["name"] == "gateway")
    url = f"http://{address_of(gateway)}:1217/readyz"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    backends = body.get("backends", {})
    expected = {"agent-loop", "llm-proxy", "tool-executor", "mcp-broker"}
    if body.get("status") != "ready" or set(backends) != expected or set(backends.values()) != {"ok"}:
        sys.exit(f"gateway /readyz: {body}")
    print(f"  gateway /readyz: {body}", flush=True)


def cleanup():
    names = podman("ps", "-a", "--filter", f"label={PREFIX}", "--format", "{{.Names}}",
                   check=False).stdout.split()
    if names:
        podman("rm", "-f", "-t", "2", *names, check=False)
    podman("network", "rm", "-f", PREFIX, check=False)


def main():
    path, image, redis_image, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    chart = Chart(path)
    cleanup()
    try:
        with tempfile.TemporaryDirectory() as files:
            os.chmod(files, 0o755)
            run(chart, image, redis_image, timeout, files)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
