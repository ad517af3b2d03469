"""The modal provider through the real ``modal`` SDK and the local Modal server, against the
docker provider on the same engine.

Modal's cloud cannot be reached here, so this measures what mngr and the SDK add on top of a
Modal that answers at once: the local Modal server (tests/modal_server, in this process) runs
each sandbox as a Docker container and each exec as `docker exec -i`, so a modal command and a
docker command pay the same engine. What differs is the SDK (gRPC calls to the server, its
command router, Volume blocks over HTTP) and mngr's provider: the modal one has no warm path
(every command bootstraps the helper over a new exec, as it must with Modal, which opens no
port), and it makes a Volume and runs a setup exec when it makes a host.

1. create (HOSTS rounds, alternating; the first reported apart): `mngr create mNN command
   --in modal` against `mngr create dNN command --in docker`, both from the same local test
   image; wall time until the agent is RUNNING.
2. list (ROUNDS rounds): `mngr list` of the HOSTS modal hosts against the HOSTS docker hosts
   (each side in its own namespace, the other provider's empty).
3. exec (ROUNDS rounds): `mngr exec m00 true` against `mngr exec d00 true`, and against the
   floor under both, `docker exec CONTAINER true` on the modal host's container.
4. snapshot (SNAPSHOTS rounds, alternating): `mngr snapshot m00` against `mngr snapshot d00`
   (each snapshot destroyed after it is timed).

Everything made is removed at the end: `mngr destroy -f --all`, then the server's sandboxes
and images, then the docker namespace's containers.

Run (a Docker engine, or root and dockerd): .venv/bin/python bench/modal_server.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from _common import (
    MNGR,
    REPO,
    Sandbox,
    compile_bytecode,
    docker_base_image,
    header,
    median,
    timed_run,
)

HOSTS = 10
ROUNDS = 8
SNAPSHOTS = 3


def names_listed(out: bytes) -> set[str]:
    return {agent["name"] for agent in json.loads(out)["agents"] if agent["state"] in ("RUNNING", "WAITING")}


def main() -> None:
    header("modal (the real SDK, the local Modal server) against docker: create, list, exec and snapshot")
    compile_bytecode()
    # bench/docker.py (a benchmark) would shadow the Docker SDK the server uses: look in the repo instead.
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(REPO), *(entry for entry in sys.path if Path(entry or ".").resolve() != here)]
    import docker

    from tests.modal_server import running

    samples: dict[str, list[float]] = {key: [] for key in (
        "create modal", "create docker", "list modal", "list docker", "exec modal", "exec docker", "docker exec",
        "snapshot modal", "snapshot docker")}
    first: dict[str, float] = {}
    with docker_base_image() as image, Sandbox() as box, \
            running(box.root / "modal-server", image, docker.from_env()) as server:
        namespace = "b" + uuid.uuid4().hex[:10]
        os.environ.update(
            server.env, MNGR_STATE_DIR=str(box.root / "s"), MODAL_CONFIG_PATH=str(box.root / "no-modal.toml"),
            MNGR_PROVIDERS__MODAL__NAMESPACE=namespace, MNGR_PROVIDERS__DOCKER__NAMESPACE=namespace,
            MNGR_PROVIDERS__DOCKER__BASE_IMAGE=image,
            MNGR_HOST_DIR=str(box.root / "h0"),  # a local host without agents
            # As in the tests: this "Modal" waits for a shared Docker engine, slow when the machine is loaded.
            MNGR_PROVIDERS__MODAL__CALL_TIMEOUT="120",
        )
        modal_only = {"MNGR_PROVIDERS__DOCKER__NAMESPACE": namespace + "-none"}
        docker_only = {"MNGR_PROVIDERS__MODAL__NAMESPACE": namespace + "-none"}
        try:
            agent = ["command", "--no-connect", "--", "sleep", "600"]
            for i in range(HOSTS):
                rows = {}
                for provider in ("modal", "docker"):
                    name = f"{provider[0]}{i:02d}"
                    seconds, out = timed_run(box, [MNGR, "create", name, agent[0], "--in", provider, *agent[1:]])
                    if b"[RUNNING]" not in out:
                        raise RuntimeError(f"mngr create --in {provider} did not report RUNNING: {out!r}")
                    rows[f"create {provider}"] = seconds
                for key, value in rows.items():
                    if i == 0:
                        first[key] = value
                    else:
                        samples[key].append(value)
            want = {"modal": {f"m{i:02d}" for i in range(HOSTS)}, "docker": {f"d{i:02d}" for i in range(HOSTS)}}
            for _ in range(ROUNDS):
                for provider, env in (("modal", modal_only), ("docker", docker_only)):
                    seconds, out = timed_run(box, [MNGR, "list", "--format", "json"], env)
                    if names_listed(out) != want[provider]:
                        raise RuntimeError(f"{provider} list showed {out!r}")
                    samples[f"list {provider}"].append(seconds)
            container = next(record["container"] for record in server.sandboxes(running_only=True)
                             if record["name"] == f"mngr-{namespace}-m00")
            for _ in range(ROUNDS):
                for key, argv, env in (("exec modal", [MNGR, "exec", "m00", "true"], modal_only),
                                       ("exec docker", [MNGR, "exec", "d00", "true"], docker_only),
                                       ("docker exec", ["docker", "exec", container, "true"], None)):
                    samples[key].append(timed_run(box, argv, env)[0])
            for _ in range(SNAPSHOTS):
                for provider, env in (("modal", modal_only), ("docker", docker_only)):
                    seconds, out = timed_run(box, [MNGR, "snapshot", f"{provider[0]}00", "--format", "{id}"], env)
                    samples[f"snapshot {provider}"].append(seconds)
                    box.mngr("snapshot", "destroy", out.decode().strip())
        finally:
            destroyed = box.mngr("destroy", "-f", "--all", check=False)
            if destroyed.returncode:
                print(f"warning: mngr destroy -f --all: {destroyed.stderr.decode().strip()}")
            left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=mngr.namespace={namespace}"],
                                  capture_output=True, text=True).stdout.split()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
        calls = dict(server.calls)
    report(samples, first, calls)


def report(samples: dict[str, list[float]], first: dict[str, float], calls: dict[str, int]) -> None:
    m = {key: median(values) for key, values in samples.items()}
    print(f"\n-- median ms ({HOSTS - 1} create rounds after a first, {ROUNDS} list and exec rounds, "
          f"{SNAPSHOTS} snapshot rounds)")
    for key, values in samples.items():
        extra = f"   first {first[key] * 1e3:7.1f}" if key in first else ""
        print(f"{key:15} {m[key] * 1e3:7.1f}   min {min(values) * 1e3:7.1f}   max {max(values) * 1e3:7.1f}{extra}")
    print(f"create modal/docker {m['create modal'] / m['create docker']:.2f}x; "
          f"list ({HOSTS} hosts) modal/docker {m['list modal'] / m['list docker']:.2f}x; "
          f"exec modal/docker {m['exec modal'] / m['exec docker']:.2f}x, "
          f"exec modal / docker exec {m['exec modal'] / m['docker exec']:.2f}x; "
          f"snapshot modal/docker {m['snapshot modal'] / m['snapshot docker']:.2f}x")
    print("server calls:", ", ".join(f"{name} {count}" for name, count in sorted(calls.items())))


if __name__ == "__main__":
    main()
