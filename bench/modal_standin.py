"""The modal provider through the SDK's stand-in, against the docker provider on the same engine.

Modal's cloud cannot be reached here, so this measures what mngr adds on top of the SDK's
calls, not Modal: the stand-in (tests/modal_standin) runs each sandbox as a Docker container
and each exec as `docker exec -i`, so a modal command and a docker command pay the same engine.
What differs is mngr's provider: the modal one has no warm path (every command bootstraps the
helper over a new exec, as it must with Modal, which opens no port), and it makes a Volume and
runs a setup exec when it makes a host.

1. create (ROUNDS rounds, alternating; the first reported apart): `mngr create mNN command
   --in modal` against `mngr create dNN command --in docker`, both from the same local test
   image; wall time until the agent is RUNNING.
2. exec (ROUNDS rounds): `mngr exec m00 true` against `mngr exec d00 true`, and against the
   floor under both, `docker exec CONTAINER true` on the modal host's container. mngr finds an
   agent by listing every host of every provider, so each side runs with the other provider's
   namespace empty, and still finds HOSTS hosts of its own to ask.
3. list (ROUNDS rounds): `mngr list` of the HOSTS modal hosts against the HOSTS docker hosts
   (each side in its own namespace, the other provider's empty).

Everything made is removed at the end: `mngr destroy -f --all`, then every container, image and
volume of the stand-in's state dir, then the docker namespace's containers.

Run (a Docker engine, or root and dockerd): .venv/bin/python bench/modal_standin.py
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from _common import (
    MNGR,
    PYTHON,
    REPO,
    Sandbox,
    compile_bytecode,
    docker_base_image,
    header,
    median,
    timed_run,
)

HOSTS = 4
ROUNDS = 8
STANDIN = REPO / "tests" / "modal_standin"


def names_listed(out: bytes) -> set[str]:
    return {agent["name"] for agent in json.loads(out)["agents"] if agent["state"] in ("RUNNING", "WAITING")}


def container_of(standin_dir: Path, sandbox_name: str) -> str:
    """The stand-in's container of the running sandbox named ``sandbox_name``."""
    state = json.loads((standin_dir / "state.json").read_text())
    for record in state["sandboxes"].values():
        if record["name"] == sandbox_name and record["result"] is None:
            return str(record["container"])
    raise RuntimeError(f"no running sandbox {sandbox_name}")


def main() -> None:
    header("modal (through the SDK stand-in) against docker: create, exec and list")
    compile_bytecode()
    samples: dict[str, list[float]] = {key: [] for key in (
        "create modal", "create docker", "exec modal", "exec docker", "docker exec", "list modal", "list docker")}
    first: dict[str, float] = {}
    with docker_base_image() as image:
        namespace = "b" + uuid.uuid4().hex[:10]
        with Sandbox() as box:
            standin_dir = box.root / "modal-state"
            os.environ.update(
                MNGR_STATE_DIR=str(box.root / "s"), PYTHONPATH=str(STANDIN), MODAL_TOKEN_ID="ak-bench",
                MODAL_TOKEN_SECRET="as-bench", MNGR_MODAL_STANDIN_DIR=str(standin_dir),
                MNGR_MODAL_STANDIN_BASE_IMAGE=image, MNGR_PROVIDERS__MODAL__NAMESPACE=namespace,
                MNGR_PROVIDERS__DOCKER__NAMESPACE=namespace, MNGR_PROVIDERS__DOCKER__BASE_IMAGE=image,
                MNGR_HOST_DIR=str(box.root / "h0"),  # a local host without agents
            )
            modal_only = {"MNGR_PROVIDERS__DOCKER__NAMESPACE": namespace + "-none"}
            docker_only = {"MNGR_PROVIDERS__MODAL__NAMESPACE": namespace + "-none"}
            try:
                agent = ["command", "--no-connect", "--", "sleep", "600"]
                for i in range(ROUNDS):
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
                    if i >= HOSTS:  # keep HOSTS of each for the listings
                        box.mngr("destroy", "-f", f"m{i:02d}", f"d{i:02d}")
                container = container_of(standin_dir, f"mngr-{namespace}-m00")
                for _ in range(ROUNDS):
                    for key, argv, env in (("exec modal", [MNGR, "exec", "m00", "true"], modal_only),
                                           ("exec docker", [MNGR, "exec", "d00", "true"], docker_only),
                                           ("docker exec", ["docker", "exec", container, "true"], None)):
                        samples[key].append(timed_run(box, argv, env)[0])
                want = {"modal": {f"m{i:02d}" for i in range(HOSTS)}, "docker": {f"d{i:02d}" for i in range(HOSTS)}}
                for _ in range(ROUNDS):
                    for provider, env in (("modal", modal_only), ("docker", docker_only)):
                        seconds, out = timed_run(box, [MNGR, "list", "--format", "json"], env)
                        if names_listed(out) != want[provider]:
                            raise RuntimeError(f"{provider} list showed {out!r}")
                        samples[f"list {provider}"].append(seconds)
            finally:
                destroyed = box.mngr("destroy", "-f", "--all", check=False)
                if destroyed.returncode:
                    print(f"warning: mngr destroy -f --all: {destroyed.stderr.decode().strip()}")
                box.run([PYTHON, "-m", "modal._standin", "cleanup"], check=False)
                left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=mngr.namespace={namespace}"],
                                      capture_output=True, text=True).stdout.split()
                if left:
                    subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
    report(samples, first)


def report(samples: dict[str, list[float]], first: dict[str, float]) -> None:
    m = {key: median(values) for key, values in samples.items()}
    print(f"\n-- median ms ({ROUNDS - 1} create rounds after a first, {ROUNDS} exec and list rounds)")
    for key, values in samples.items():
        extra = f"   first {first[key] * 1e3:7.1f}" if key in first else ""
        print(f"{key:14} {m[key] * 1e3:7.1f}   min {min(values) * 1e3:7.1f}   max {max(values) * 1e3:7.1f}{extra}")
    print(f"create modal/docker {m['create modal'] / m['create docker']:.2f}x; "
          f"exec modal/docker {m['exec modal'] / m['exec docker']:.2f}x, "
          f"exec modal / docker exec {m['exec modal'] / m['docker exec']:.2f}x; "
          f"list ({HOSTS} hosts) modal/docker {m['list modal'] / m['list docker']:.2f}x")


if __name__ == "__main__":
    main()
