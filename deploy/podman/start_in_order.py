"""Starts a created compose project's containers in the order of their
`depends_on`, holding each one until its dependencies meet their conditions
(`service_started`: running; `service_healthy`: its healthcheck passes).

podman-compose leaves `condition: service_healthy` to `podman wait
--condition=healthy`, which podman before 4.6 lacks (it then ignores the
condition), and podman runs healthchecks from systemd timers, which a machine
without systemd lacks. This does both: it runs `podman healthcheck run` itself
until the check passes, so a container starts only once what it depends on
is healthy, as docker-compose.yml says.

usage: start_in_order.py MERGED_COMPOSE_JSON PROJECT TIMEOUT_SECONDS
(MERGED_COMPOSE_JSON: `podman-compose config` converted to JSON). Prints
each start, with the seconds since the first.
"""

import json
import subprocess
import sys
import time


def container(project, service):
    return f"{project}_{service}_1"


def podman(*args, check=True):
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


def running(name):
    out = podman("inspect", "--format", "{{.State.Running}}", name, check=False)
    return out.stdout.strip() == "true"


def healthy(name):
    # Runs the check now (records the result) rather than waiting for a timer.
    return podman("healthcheck", "run", name, check=False).returncode == 0


def main():
    services = json.load(open(sys.argv[1]))["services"]
    project, timeout = sys.argv[2], float(sys.argv[3])
    start = time.monotonic()
    started = set()
    while len(started) < len(services):
        progressed = False
        for name, service in services.items():
            if name in started:
                continue
            deps = service.get("depends_on") or {}
            if isinstance(deps, list):
                deps = {d: {"condition": "service_started"} for d in deps}
            if any(d not in started for d in deps):
                continue
            ready = all(
                healthy(container(project, d))
                if c.get("condition") == "service_healthy"
                else running(container(project, d))
                for d, c in deps.items()
            )
            if not ready:
                continue
            podman("start", container(project, name))
            started.add(name)
            progressed = True
            print(f"  started {name} at {time.monotonic() - start:.1f} s", flush=True)
        if time.monotonic() - start > timeout:
            waiting = sorted(set(services) - started)
            sys.exit(f"not started within {timeout:.0f} s: {', '.join(waiting)}")
        if not progressed:
            time.sleep(0.5)


if __name__ == "__main__":
    main()
