"""Assertions about the deployment files that no schema expresses.

    check_deploy.py REPO_ROOT RENDERED_DIR

RENDERED_DIR holds the chart rendered per scenario (helm_chart.py render);
`default.yaml` is the chart with its default values. Prints a line per group
of checks (every check with VERBOSE=1) and each failure; exits non-zero when
any fails.
"""

import os
import re
import sys
import tomllib

import yaml

SERVICES = {
    # component -> (binary, cargo package directory)
    "gateway": ("openheim-gateway", "gateway"),
    "agent-loop": ("openheim-agent-loop", "services/agent-loop"),
    "llm-proxy": ("openheim-llm-proxy", "services/llm-proxy"),
    "tool-executor": ("openheim-tool-executor", "services/tool-executor"),
    "mcp-broker": ("openheim-mcp-broker", "services/mcp-broker"),
}
ALL_BINARIES = {"openheim": "cli", **{b: d for b, d in SERVICES.values()}}
PROVIDER_KEY_VARS = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"}
WEBSOCKET_ANNOTATIONS = (
    "nginx.ingress.kubernetes.io/proxy-read-timeout",
    "nginx.ingress.kubernetes.io/proxy-send-timeout",
)

failures = []
VERBOSE = os.environ.get("VERBOSE") == "1"
_group = {"name": None, "count": 0, "failed": 0}


def group(name):
    """Starts a group of checks; the previous one prints its summary."""
    end_group()
    _group.update(name=name, count=0, failed=0)


def end_group():
    if _group["name"] is not None and not _group["failed"]:
        print(f"  ok   {_group['name']}: {_group['count']} checks")
    _group["name"] = None


def check(name, ok, detail=""):
    _group["count"] += 1
    if ok:
        if VERBOSE:
            print(f"       ok {name}")
    else:
        _group["failed"] += 1
        failures.append(name)
        print(f"  FAIL {name}" + (f": {detail}" if detail else ""))


# --- Dockerfile -------------------------------------------------------------

def binaries_of(root, package_dir):
    manifest = tomllib.load(open(os.path.join(root, package_dir, "Cargo.toml"), "rb"))
    bins = [b["name"] for b in manifest.get("bin", [])]
    if not bins and os.path.exists(os.path.join(root, package_dir, "src/main.rs")):
        bins = [manifest["package"]["name"]]
    return bins


def check_dockerfile(root):
    group("Dockerfile: the six binaries, release build, non-root runtime")
    text = open(os.path.join(root, "deploy/Dockerfile")).read()
    for binary, package_dir in ALL_BINARIES.items():
        check(f"Dockerfile: `{binary}` is a binary of {package_dir}",
              binary in binaries_of(root, package_dir))
        check(f"Dockerfile: builds and copies {binary}",
              f"target/release/{binary}" in text)
    check("Dockerfile: release build with --locked", "cargo build --release --locked" in text)
    check("Dockerfile: runtime is debian bookworm-slim with ca-certificates",
          re.search(r"FROM debian:\$\{DEBIAN_RELEASE\}-slim", text) is not None
          and "ARG DEBIAN_RELEASE=bookworm" in text and "ca-certificates" in text)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    check("Dockerfile: runs as a non-root numeric user",
          bool(users) and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0")
    check("Dockerfile: /data and /workspace owned by that user",
          "chown openheim:openheim /data /workspace" in text)
    rust = re.search(r"ARG RUST_VERSION=(\d+)\.(\d+)", text)
    check("Dockerfile: Rust >= 1.95 (reedline)",
          rust is not None and (int(rust.group(1)), int(rust.group(2))) >= (1, 95))
    ignore = open(os.path.join(root, ".dockerignore")).read().split()
    check(".dockerignore: leaves out target/ and .git", "**/target" in ignore and ".git" in ignore)


# --- docker-compose.yml -----------------------------------------------------

def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def check_compose(root):
    group("docker-compose.yml, compose.env, collector and config.toml")
    compose = yaml.safe_load(open(os.path.join(root, "docker-compose.yml")))
    services = compose["services"]
    expected = set(SERVICES) | {"redis", "otel-collector"}
    check("compose: gateway, the four services, redis and otel-collector",
          set(services) == expected, f"got {sorted(services)}")
    shared_env = {}
    for line in open(os.path.join(root, "deploy/compose.env")):
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            shared_env[key] = value
    for component, (binary, _) in SERVICES.items():
        service = services.get(component, {})
        command = service.get("command") or []
        port = "1217" if component == "gateway" else "50051"
        check(f"compose {component}: runs {binary} --listen 0.0.0.0:{port}",
              command[:3] == [binary, "--listen", f"0.0.0.0:{port}"], str(command))
        check(f"compose {component}: healthcheck and restart policy",
              bool(service.get("healthcheck")) and service.get("restart") == "unless-stopped")
        check(f"compose {component}: reads deploy/compose.env and the mounted config",
              "deploy/compose.env" in (service.get("env_file") or [])
              and "./deploy/config.toml:/etc/openheim/config.toml:ro" in service.get("volumes", []))
        env = env_of(service)
        keys = PROVIDER_KEY_VARS & set(env)
        if component == "llm-proxy":
            check("compose llm-proxy: provider keys passed through, never literal",
                  keys == PROVIDER_KEY_VARS and all(env[k] is None for k in keys), str(env))
        else:
            check(f"compose {component}: no provider key", not keys)
        check(f"compose {component}: non-root hardening (no-new-privileges, cap_drop ALL)",
              "no-new-privileges:true" in service.get("security_opt", [])
              and "ALL" in service.get("cap_drop", []))
    for name in ("AGENT_LOOP", "LLM_PROXY", "TOOL_EXECUTOR", "MCP_BROKER"):
        host = name.lower().replace("_", "-")
        check(f"compose.env: OPENHEIM_SERVICES__{name} -> {host}:50051",
              shared_env.get(f"OPENHEIM_SERVICES__{name}") == f"http://{host}:50051")
    check("compose.env: OTLP endpoint is the collector",
          shared_env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-collector:4317"
          and shared_env.get("OPENHEIM_TELEMETRY__OTLP_ENDPOINT") == "http://otel-collector:4317")
    check("compose.env: holds no secret",
          not any(re.search(r"KEY|TOKEN|SECRET|PASSWORD", k) for k in shared_env))
    agent_env = env_of(services["agent-loop"])
    check("compose agent-loop: session store is Redis by default",
          "redis://redis:6379" in str(agent_env.get("OPENHEIM_STORE__URL")))
    gateway = services["gateway"]
    check("compose gateway: publishes 1217, token from the environment",
          any(str(p).endswith(":1217") for p in gateway.get("ports", []))
          and str(env_of(gateway).get("OPENHEIM_SERVER__AUTH_TOKENS", "")).startswith("${"))
    check("compose gateway: counts per-user limits in agent-loop's Redis",
          env_of(gateway).get("OPENHEIM_STORE__URL") == agent_env.get("OPENHEIM_STORE__URL"))
    check("compose mcp-broker: keeps OAuth tokens in agent-loop's Redis",
          env_of(services["mcp-broker"]).get("OPENHEIM_STORE__URL")
          == agent_env.get("OPENHEIM_STORE__URL"))
    check("compose tool-executor: owns the workspace volume read-write",
          "workspace:/workspace" in services["tool-executor"]["volumes"])
    check("compose: named volumes for workspace, data and redis",
          {"workspace", "data", "redis"} <= set(compose.get("volumes") or {}))
    collector = services["otel-collector"]
    check("compose otel-collector: contrib image with deploy/otel-collector.yaml",
          collector["image"].startswith("otel/opentelemetry-collector-contrib:")
          and any("deploy/otel-collector.yaml" in v for v in collector.get("volumes", [])))

    otel = yaml.safe_load(open(os.path.join(root, "deploy/otel-collector.yaml")))
    protocols = otel["receivers"]["otlp"]["protocols"]
    check("collector: OTLP gRPC 4317 and HTTP 4318",
          protocols["grpc"]["endpoint"].endswith(":4317")
          and protocols["http"]["endpoint"].endswith(":4318"))
    pipelines = otel["service"]["pipelines"]
    check("collector: traces, metrics and logs exported to debug",
          all("debug" in pipelines[p]["exporters"] and "otlp" in pipelines[p]["receivers"]
              for p in ("traces", "metrics", "logs")))
    try:
        config = tomllib.load(open(os.path.join(root, "deploy/config.toml"), "rb"))
        check("deploy/config.toml: valid TOML, default provider configured",
              config.get("default_provider") in config.get("providers", {}))
        check("deploy/config.toml: no literal API key",
              not any("api_key" in p for p in config.get("providers", {}).values()))
    except tomllib.TOMLDecodeError as e:
        check("deploy/config.toml: valid TOML", False, str(e))


# --- the rendered Helm chart ------------------------------------------------

def containers_of(deployment):
    return deployment["spec"]["template"]["spec"]["containers"]


def check_rendered(path, scenario):
    group(f"helm[{scenario}]: probes, non-root, wiring, secrets, services, HPA, Ingress")
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    deployments = by_kind.get("Deployment", {})
    services = by_kind.get("Service", {})
    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    prefix = f"helm[{scenario}]"

    components = {d["metadata"]["labels"].get("app.kubernetes.io/component"): d
                  for d in deployments.values()}
    check(f"{prefix}: a Deployment per component",
          set(SERVICES) <= set(components), f"got {sorted(components)}")

    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext") or {}
        for c in containers_of(d):
            sc = c.get("securityContext") or {}
            check(f"{prefix} {name}: liveness and readiness probes",
                  "livenessProbe" in c and "readinessProbe" in c)
            check(f"{prefix} {name}: non-root, no privilege escalation, capabilities dropped",
                  (pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot")) is True
                  and (pod_sc.get("runAsUser") or sc.get("runAsUser") or 0) != 0
                  and sc.get("allowPrivilegeEscalation") is False
                  and "ALL" in (sc.get("capabilities") or {}).get("drop", []))
            check(f"{prefix} {name}: read-only root filesystem", sc.get("readOnlyRootFilesystem") is True)
            # Service links would add OPENHEIM_*_PORT variables (release
            # "openheim"), which the services read as unknown config keys.
            check(f"{prefix} {name}: no service-link environment variables",
                  pod.get("enableServiceLinks") is False)
            check(f"{prefix} {name}: resource requests and memory limit",
                  bool((c.get("resources") or {}).get("requests"))
                  and "memory" in (c.get("resources") or {}).get("limits", {}))
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            volumes = {v["name"] for v in pod.get("volumes", [])}
            check(f"{prefix} {name}: every volume mount has a volume", mounts <= volumes,
                  f"missing {sorted(mounts - volumes)}")

    for component, (binary, _) in SERVICES.items():
        d = components.get(component)
        if d is None:
            continue
        c = containers_of(d)[0]
        env = {e["name"]: e for e in c.get("env", [])}
        args = c.get("args") or []
        check(f"{prefix} {component}: runs {binary} --listen", args[:2] == [binary, "--listen"], str(args))
        if component == "gateway":
            check(f"{prefix} gateway: HTTP probes /healthz (liveness) and /readyz (readiness)",
                  c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz"
                  and c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz")
            tokens = env.get("OPENHEIM_SERVER__AUTH_TOKENS", {})
            check(f"{prefix} gateway: auth tokens from a Secret",
                  "secretKeyRef" in tokens.get("valueFrom", {}))
        else:
            check(f"{prefix} {component}: gRPC probes (grpc.health.v1) on 50051",
                  c.get("livenessProbe", {}).get("grpc", {}).get("port") == 50051
                  and c.get("readinessProbe", {}).get("grpc", {}).get("port") == 50051)
        for peer in ("agent-loop", "llm-proxy", "tool-executor", "mcp-broker"):
            var = "OPENHEIM_SERVICES__" + peer.upper().replace("-", "_")
            value = env.get(var, {}).get("value", "")
            host = re.fullmatch(r"http://([a-z0-9-]+):50051", value)
            check(f"{prefix} {component}: {var} names the {peer} Service",
                  host is not None and host.group(1) in services
                  and services[host.group(1)]["metadata"]["labels"].get(
                      "app.kubernetes.io/component") == peer, value)
        agent_loop = re.fullmatch(r"http://([a-z0-9-]+):50051",
                                  env.get("OPENHEIM_SERVICES__AGENT_LOOP", {}).get("value", ""))
        if component == "gateway" and agent_loop and agent_loop.group(1) in services:
            check(f"{prefix} gateway: agent-loop through a headless Service (turns balanced)",
                  services[agent_loop.group(1)]["spec"].get("clusterIP") == "None")
        env_from = [e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])]
        key_vars = PROVIDER_KEY_VARS & set(env)
        if component == "llm-proxy":
            check(f"{prefix} llm-proxy: provider keys from a Secret (envFrom)", bool(env_from))
        else:
            check(f"{prefix} {component}: sees no provider key", not env_from and not key_vars)
        if component in ("gateway", "agent-loop"):
            check(f"{prefix} {component}: counts limits in the session store's Redis",
                  "OPENHEIM_STORE__URL" in env)
            limits = {k: v.get("value") for k, v in env.items()
                      if k.startswith("OPENHEIM_SERVER__LIMITS__")}
            check(f"{prefix} {component}: limits are whole numbers",
                  all(str(v).isdigit() and int(v) > 0 for v in limits.values()), str(limits))
            if prefix.endswith("[external-redis]"):
                check(f"{prefix} {component}: the configured limits reach it",
                      limits.get("OPENHEIM_SERVER__LIMITS__CONCURRENT_TURNS") == "4"
                      and limits.get("OPENHEIM_SERVER__LIMITS__TOKENS_PER_DAY") == "2000000"
                      and "OPENHEIM_SERVER__LIMITS__SESSIONS_PER_DAY" not in limits, str(limits))
        if component == "mcp-broker":
            check(f"{prefix} mcp-broker: keeps OAuth tokens in the session store's Redis",
                  "OPENHEIM_STORE__URL" in env)
        if component == "agent-loop":
            store = env.get("OPENHEIM_STORE__URL", {})
            check(f"{prefix} agent-loop: session store is Redis",
                  str(store.get("value", "")).startswith("redis://")
                  or "secretKeyRef" in store.get("valueFrom", {}))
            bundled = store.get("value", "").split("//")[-1].split(":")[0]
            if bundled in services:
                check(f"{prefix} agent-loop: bundled Redis Service and Deployment exist",
                      "redis" in components)
        if component == "tool-executor":
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            check(f"{prefix} tool-executor: workspace mounted read-write at /workspace",
                  "/workspace" in mounts and not mounts["/workspace"].get("readOnly"))

    for name, svc in services.items():
        selector = svc["spec"]["selector"]
        targets = [d for d in deployments.values()
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        check(f"{prefix} Service {name}: selects a Deployment", len(targets) == 1)
        if targets:
            ports = {p.get("name") for c in containers_of(targets[0]) for p in c.get("ports", [])}
            check(f"{prefix} Service {name}: target ports exist",
                  all(p["targetPort"] in ports for p in svc["spec"]["ports"]))

    for name, cm in configmaps.items():
        if "config.toml" in cm.get("data", {}):
            try:
                tomllib.loads(cm["data"]["config.toml"])
                check(f"{prefix} ConfigMap {name}: config.toml is valid TOML", True)
            except tomllib.TOMLDecodeError as e:
                check(f"{prefix} ConfigMap {name}: config.toml is valid TOML", False, str(e))

    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = hpa["spec"]["scaleTargetRef"]["name"]
        check(f"{prefix} HPA {name}: targets a Deployment without fixed replicas",
              target in deployments and "replicas" not in deployments[target]["spec"])

    for name, ingress in by_kind.get("Ingress", {}).items():
        backends = [p["backend"]["service"]["name"] for r in ingress["spec"]["rules"]
                    for p in r["http"]["paths"]]
        check(f"{prefix} Ingress {name}: routes to the gateway Service",
              all(services.get(b, {}).get("metadata", {}).get("labels", {}).get(
                  "app.kubernetes.io/component") == "gateway" for b in backends) and backends)
        gateway = next((d for d in deployments.values()
                        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway"), None)
        if gateway is not None:
            hosts = {e["name"]: e.get("value", "") for e in containers_of(gateway)[0].get("env", [])}
            allowed = hosts.get("OPENHEIM_SERVER__ALLOWED_HOSTS", "").split(",")
            rule_hosts = [r["host"] for r in ingress["spec"]["rules"] if r.get("host")]
            check(f"{prefix} Ingress {name}: the gateway answers to its hosts (server.allowed_hosts)",
                  all(h in allowed for h in rule_hosts) and any(b in allowed for b in backends),
                  f"{rule_hosts} / {backends} not in {allowed}")
        if ingress["spec"].get("ingressClassName") == "nginx":
            annotations = ingress["metadata"].get("annotations") or {}
            check(f"{prefix} Ingress {name}: WebSocket timeouts for ingress-nginx",
                  all(int(annotations.get(a, "0")) >= 300 for a in WEBSOCKET_ANNOTATIONS),
                  str(annotations))

    if scenario == "default":
        providers = [s for n, s in secrets.items() if n.endswith("-providers")]
        check(f"{prefix}: the provider Secret holds no key by default",
              len(providers) == 1 and not providers[0].get("data") and not providers[0].get("stringData"))
        check(f"{prefix}: bundled Redis by default", "redis" in components)
        check(f"{prefix}: workspace PersistentVolumeClaim by default",
              any(n.endswith("-workspace") for n in by_kind.get("PersistentVolumeClaim", {})))
        check(f"{prefix}: no Ingress or HPA by default",
              not by_kind.get("Ingress") and not by_kind.get("HorizontalPodAutoscaler"))


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    root, rendered = argv
    steps = [(check_dockerfile, (root,)), (check_compose, (root,))]
    steps += [(check_rendered, (os.path.join(rendered, f), f[:-5]))
              for f in sorted(os.listdir(rendered)) if f.endswith(".yaml")]
    for step, args in steps:
        try:
            step(*args)
        except Exception as e:  # noqa: BLE001 - a malformed file is a failure too
            check(f"{step.__name__}{args}: unexpected structure", False, f"{type(e).__name__}: {e}")
    if "default.yaml" not in os.listdir(rendered):
        check("helm: the default values were rendered", False)
    end_group()
    print(f"  {len(failures)} failed" if failures else "  all assertions hold")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
