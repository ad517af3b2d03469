"""The docker provider: `mngr create --in docker` and `mngr list` over 10 containers, vs local.

Everything runs against a Docker engine on this machine, in a namespace of its own
(MNGR_PROVIDERS__DOCKER__NAMESPACE=b<random>: mngr sees only this run's containers, named
mngr-<namespace>-<host>), from the local Debian test image (tests/docker_engine.py's
base_image: python3 and tmux, built with debootstrap if missing; no registry is needed). The
engine is found, or started as root, by a child process running tests/docker_engine.py (this
file is called docker.py, so `import docker` in this process would import itself); the child
stays up for the whole run and stops a dockerd only if it started one.

1. create (10 rounds, alternating; the first reported apart, the median of the other 9)
   docker     `mngr create dNN command --in docker --no-connect -- sleep 600`: a new container
              (image looked up, container created and started, python3/tmux checked), the
              helper bootstrapped in it over `docker exec -i`, the idle settings, the agent;
              wall time until the command returns with the agent RUNNING.
   local      `mngr create lNN command --no-connect -- sleep 600` on the local provider (the
              tmux server and host daemon up after the first round).
   docker run `docker run -d --label ... IMAGE sleep 600`, the same image: the Go CLI's
              container create+start, the floor of any new container (removed, untimed).
   docker exec `docker exec CONTAINER true` on that container: the floor of reaching into
              one, which mngr's bootstrap pays once (its ProcessStream is a `docker exec -i`).
   floor      `.venv/bin/python -c "import mngr.controller.cli.main"`.
   Then 3 more docker creates run in a child with mngr's steps timed from outside
   (STEP_TIMER), to split the time; those agents are destroyed before step 2.
2. list: the 10 docker agents (one per container) against 10 local agents, alternating,
   median of 10 after 3 warm-up runs each. Each side sees only its own agents: the docker
   list runs with an empty MNGR_HOST_DIR (a local host that never had an agent is not
   asked), the local list with a namespace without containers and a state dir of its own
   (the docker provider still asks the engine, and finds nothing; docker_hosts.json is not
   kept per namespace, so with the shared state dir the 10 hosts would show as GONE). Peers: `docker ps --filter label=...` over the same
   10 containers, and the floor. Then 3 more docker lists in a child with their steps timed.
   first: the first docker list after the containers started (their host daemons are up,
   started by the creates' bootstraps).
   cold (3 rounds): the host daemons killed first (in the containers: by pid namespace;
   locally: the sandbox's daemon), so every host is bootstrapped again over `docker exec -i`
   (the local one over a pipe). Peer: 10 `docker exec C tmux list-sessions` at once from a
   `python -c` (threads), the naive way to ask every container.

Everything made is removed at the end, also on failure: `mngr destroy -f --all` in the
sandbox, then `docker rm -f` of every container with this run's labels, then the sandbox
(tmux server, helpers, daemons by pid, directories).

Run (a Docker engine, or root and dockerd): .venv/bin/python bench/docker.py
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from _common import (
    FLOOR_ARGV,
    MNGR,
    PYTHON,
    RUN_TIMED,
    STEP_TIMER,
    Sandbox,
    compile_bytecode,
    docker_base_image,
    header,
    median,
    timed_run,
)

AGENTS = 10          # containers (one agent each) and local agents: one per create round
ALIVE = ("RUNNING", "WAITING")  # a quiet `sleep 600` turns WAITING after a few seconds
STEP_RUNS = 3        # docker creates with their steps timed
LIST_WARMUP, LIST_RUNS, COLD_RUNS = 3, 10, 3
PEER_LABEL = "mngr-bench"

TIMED_CREATE = STEP_TIMER + r"""
start = time.perf_counter()
import docker.models.containers
steps["import docker SDK (in a plain run: inside prepare_host)"] = time.perf_counter() - start
from mngr.controller.hosts import HostHandle
from mngr.providers import docker_engine
from mngr.providers.docker import DockerProvider
timed(DockerProvider, "prepare_host", "prepare_host: the container")
timed(docker_engine, "sdk_client", "  docker.from_env")
timed(DockerProvider, "_image_for", "  image lookup")
timed(docker.models.containers.ContainerCollection, "run", "  containers.run: create + start")
timed(DockerProvider, "_check_tools", "  python3/tmux check (exec_run)")
timed(HostHandle, "connect", "connect: helper bootstrapped over docker exec -i")
timed(HostHandle, "set_idle_settings", "idle settings (dry run + set)")
timed(HostHandle, "create_agent", "CreateAgent")
""" + RUN_TIMED

TIMED_LIST = STEP_TIMER + r"""
from mngr.controller.cli import listing
from mngr.controller.hosts import HostHandle
from mngr.providers import docker_engine
from mngr.providers.docker import DockerProvider
timed(docker_engine, "containers", "engine: GET /containers/json (raw API)")
timed(listing, "list_fleet", "list_fleet: every host asked, in parallel")
timed(HostHandle, "list_host", "  list_host (socket connect + ListAgents), summed over hosts")
timed(DockerProvider, "listed", "  docker_hosts.json update, summed over hosts")
""" + RUN_TIMED

NAIVE = r"""
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
def one(container):
    return subprocess.run(["docker", "exec", container, "tmux", "list-sessions"],
                          stdin=subprocess.DEVNULL, capture_output=True)
with ThreadPoolExecutor(len(sys.argv) - 1) as pool:
    results = list(pool.map(one, sys.argv[1:]))
print(sum(len(r.stdout.splitlines()) for r in results))
sys.exit(max(r.returncode for r in results))
"""


def docker_cli(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:2])}... failed: {done.stderr.strip()}")
    return done.stdout


def remove_containers(namespace: str) -> int:
    ids: set[str] = set()
    for label in (f"mngr.namespace={namespace}", f"{PEER_LABEL}={namespace}"):
        ids |= set(docker_cli("ps", "-aq", "--filter", f"label={label}", check=False).split())
    if ids:
        docker_cli("rm", "-f", *sorted(ids), check=False)
    return len(ids)


def listed(out: bytes) -> dict[str, str]:
    """name -> state from `mngr list --format json`."""
    return {agent["name"]: agent["state"] for agent in json.loads(out)["agents"]}


def wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X"):
                alive.append(pid)
        if not alive:
            return
        time.sleep(0.01)


def kill_container_daemons(containers: list[str]) -> int:
    """SIGTERM the host daemons in these containers (processes in their pid namespaces)."""
    namespaces = set()
    for pid in docker_cli("inspect", "-f", "{{.State.Pid}}", *containers).split():
        with contextlib.suppress(OSError):
            namespaces.add(os.readlink(f"/proc/{pid}/ns/pid"))
    victims = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if (b"mngr_remote_helper.daemon" in Path(f"/proc/{entry}/cmdline").read_bytes()
                    and os.readlink(f"/proc/{entry}/ns/pid") in namespaces):
                victims.append(int(entry))
        except OSError:
            continue
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_gone(victims)
    return len(victims)


def stop_local_daemon(box: Sandbox) -> None:
    pids = [pid for pid in box.processes()
            if b"mngr_remote_helper.daemon" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    box.stop_daemons()
    wait_gone(pids)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:7.1f}"


def create_phase(box: Sandbox, image_env: dict[str, str], local_env: dict[str, str],
                 namespace: str) -> tuple[dict[str, list[float]], dict[str, float], str]:
    """Creates AGENTS docker and AGENTS local agents (timed), with the peers beside them."""
    samples: dict[str, list[float]] = {k: [] for k in ("docker", "local", "docker run", "docker exec", "floor")}
    first: dict[str, float] = {}
    image = ""
    agent = ["command", "--no-connect", "--", "sleep", "600"]
    for i in range(AGENTS):
        name = f"{i:02d}"
        docker_s, out = timed_run(box, [MNGR, "create", f"d{name}", *agent[:1], "--in", "docker", *agent[1:]], image_env)
        if b"[RUNNING]" not in out:
            raise RuntimeError(f"mngr create --in docker did not report RUNNING: {out!r}")
        local_s, out = timed_run(box, [MNGR, "create", f"l{name}", *agent], local_env)
        if b"[RUNNING]" not in out:
            raise RuntimeError(f"mngr create (local) did not report RUNNING: {out!r}")
        if not image:
            image = docker_cli("inspect", "-f", "{{.Config.Image}}", f"mngr-{namespace}-d{name}").strip()
        peer = f"mngr-bench-{namespace}-p{name}"
        run_s, _ = timed_run(box, ["docker", "run", "-d", "--name", peer, "--label", f"{PEER_LABEL}={namespace}",
                               image, "sleep", "600"])
        exec_s, _ = timed_run(box, ["docker", "exec", peer, "true"])
        docker_cli("rm", "-f", peer)
        floor_s, _ = timed_run(box, FLOOR_ARGV)
        row = {"docker": docker_s, "local": local_s, "docker run": run_s, "docker exec": exec_s, "floor": floor_s}
        if i == 0:
            first = row
        else:
            for key, value in row.items():
                samples[key].append(value)
    return samples, first, image


def step_phase(box: Sandbox, image_env: dict[str, str]) -> tuple[list[dict[str, float]], list[float]]:
    steps, walls = [], []
    for i in range(STEP_RUNS):
        start = time.perf_counter()
        done = box.run([PYTHON, "-c", TIMED_CREATE, "create", f"s{i}", "command", "--in", "docker",
                        "--no-connect", "--", "sleep", "600"], env=image_env)
        walls.append(time.perf_counter() - start)
        steps.append(json.loads(done.stderr.decode().strip().splitlines()[-1]))
    box.mngr("destroy", "-f", *(f"s{i}" for i in range(STEP_RUNS)))
    return steps, walls


def list_phase(box: Sandbox, docker_env: dict[str, str], local_env: dict[str, str],
               namespace: str) -> tuple[dict[str, list[float]], list[dict[str, float]]]:
    containers = [f"mngr-{namespace}-d{i:02d}" for i in range(AGENTS)]
    docker_list = [MNGR, "list", "--format", "json"]
    want_docker = {f"d{i:02d}" for i in range(AGENTS)}
    want_local = {f"l{i:02d}" for i in range(AGENTS)}
    ps = ["docker", "ps", "--filter", f"label=mngr.namespace={namespace}"]
    naive = [PYTHON, "-I", "-S", "-c", NAIVE, *containers]
    samples: dict[str, list[float]] = {k: [] for k in (
        "first", "docker", "local", "docker ps", "floor", "cold docker", "cold local", "naive exec", "cold floor")}

    def check(seconds: float, out: bytes, want: set[str], key: str) -> None:
        got = listed(out)
        if set(got) != want or not set(got.values()) <= set(ALIVE):
            raise RuntimeError(f"{key} list showed {got}, expected {want}")
        samples[key].append(seconds)

    check(*timed_run(box, docker_list, docker_env), want_docker, "first")
    for i in range(LIST_WARMUP + LIST_RUNS):
        docker_s, docker_out = timed_run(box, docker_list, docker_env)
        local_s, local_out = timed_run(box, docker_list, local_env)
        ps_s, ps_out = timed_run(box, ps)
        floor_s, _ = timed_run(box, FLOOR_ARGV)
        if i >= LIST_WARMUP:
            check(docker_s, docker_out, want_docker, "docker")
            check(local_s, local_out, want_local, "local")
            if len(ps_out.splitlines()) != AGENTS + 1:
                raise RuntimeError(f"docker ps showed {ps_out!r}")
            samples["docker ps"].append(ps_s)
            samples["floor"].append(floor_s)
    steps = []
    for _ in range(STEP_RUNS):
        done = box.run([PYTHON, "-c", TIMED_LIST, "list", "--format", "json"], env=docker_env)
        steps.append(json.loads(done.stderr.decode().strip().splitlines()[-1]))
    for _ in range(COLD_RUNS):
        killed = kill_container_daemons(containers)
        if killed != AGENTS:
            print(f"warning: killed {killed} host daemons in the containers, expected {AGENTS}")
        check(*timed_run(box, docker_list, docker_env), want_docker, "cold docker")
        stop_local_daemon(box)
        check(*timed_run(box, docker_list, local_env), want_local, "cold local")
        naive_s, naive_out = timed_run(box, naive)
        if naive_out.strip() != str(AGENTS).encode():
            print(f"warning: the naive peer saw {naive_out.strip()!r} tmux sessions, expected {AGENTS}")
        samples["naive exec"].append(naive_s)
        samples["cold floor"].append(timed_run(box, FLOOR_ARGV)[0])
    return samples, steps


def main() -> None:
    header("docker: `mngr create --in docker` and `mngr list` over 10 containers, vs the local provider")
    compile_bytecode()
    with docker_base_image() as base_image:
        namespace = "b" + uuid.uuid4().hex[:10]
        with Sandbox() as box:
            state_dir = box.root / "s"
            os.environ.update(MNGR_STATE_DIR=str(state_dir), MNGR_PROVIDERS__DOCKER__NAMESPACE=namespace,
                              MNGR_PROVIDERS__DOCKER__BASE_IMAGE=base_image)
            docker_env = {"MNGR_HOST_DIR": str(box.root / "h0")}  # a local host without agents
            local_env = {"MNGR_PROVIDERS__DOCKER__NAMESPACE": namespace + "-none",
                         "MNGR_STATE_DIR": str(box.root / "s0")}
            try:
                create, first, image = create_phase(box, docker_env, local_env, namespace)
                steps, step_walls = step_phase(box, docker_env)
                lists, list_steps = list_phase(box, docker_env, local_env, namespace)
            finally:
                destroyed = box.mngr("destroy", "-f", "--all", check=False)
                if destroyed.returncode:
                    print(f"warning: mngr destroy -f --all: {destroyed.stderr.decode().strip()}")
                leftover = remove_containers(namespace)
                if leftover:
                    print(f"note: removed {leftover} containers that mngr destroy left")
    report(namespace, image, create, first, steps, step_walls, lists, list_steps)


def report(namespace: str, image: str, create: dict[str, list[float]], first: dict[str, float],
           steps: list[dict[str, float]], step_walls: list[float], lists: dict[str, list[float]],
           list_steps: list[dict[str, float]]) -> None:
    m = {key: median(values) for key, values in create.items()}
    print(f"namespace {namespace}, image {image}")
    print(f"\n-- create: median of {AGENTS - 1} rounds (alternating; round 0 apart), ms")
    print(f"{'':28} {'median':>7} {'min':>7} {'max':>7} {'round 0':>8}")
    for key, label in (("docker", "mngr create --in docker"), ("local", "mngr create (local)"),
                       ("docker run", "docker run -d IMAGE sleep"), ("docker exec", "docker exec C true"),
                       ("floor", "floor (import CLI)")):
        values = create[key]
        print(f"{label:28} {ms(m[key])} {ms(min(values))} {ms(max(values))} {ms(first[key]):>8}")
    print(f"ratio docker/local {m['docker'] / m['local']:.2f}x, docker - local {(m['docker'] - m['local']) * 1e3:.0f} ms;"
          f" docker create / docker run {m['docker'] / m['docker run']:.2f}x;"
          f" docker - (local + docker run + docker exec) = "
          f"{(m['docker'] - m['local'] - m['docker run'] - m['docker exec']) * 1e3:.0f} ms")

    print(f"\n-- where a docker create goes: {STEP_RUNS} more runs in a child, steps timed from outside, "
          "median ms (wall of the child: " + ", ".join(f"{w * 1e3:.0f}" for w in step_walls) + ")")
    for key in steps[0]:
        print(f"  {key:58} {ms(median([s.get(key, 0.0) for s in steps]))}")

    lm = {key: median(values) for key, values in lists.items()}
    print(f"\n-- list: {AGENTS} agents, warm median of {LIST_RUNS} (after {LIST_WARMUP} warm-up, alternating), "
          f"cold median of {COLD_RUNS}, ms")
    for key, label in (("docker", f"mngr list, {AGENTS} containers"), ("local", f"mngr list, {AGENTS} local agents"),
                       ("docker ps", f"docker ps ({AGENTS} containers)"), ("floor", "floor (import CLI)"),
                       ("first", "first docker list after creates"),
                       ("cold docker", "cold: docker, daemons killed"), ("cold local", "cold: local, daemon killed"),
                       ("naive exec", f"cold peer: {AGENTS}x docker exec tmux ls"), ("cold floor", "cold: floor")):
        values = lists[key]
        print(f"{label:38} {ms(lm[key])}   min {ms(min(values))}   max {ms(max(values))}")
    print(f"warm ratio docker/local {lm['docker'] / lm['local']:.2f}x (docker - local "
          f"{(lm['docker'] - lm['local']) * 1e3:.1f} ms); over the floor: docker "
          f"{(lm['docker'] - lm['floor']) * 1e3:.1f} ms, local {(lm['local'] - lm['floor']) * 1e3:.1f} ms")
    print(f"where a warm docker list goes ({STEP_RUNS} more runs in a child, steps timed from outside), median ms:")
    for key in list_steps[0]:
        print(f"  {key:58} {ms(median([s.get(key, 0.0) for s in list_steps]))}")
    print(f"cold ratio docker/local {lm['cold docker'] / lm['cold local']:.2f}x; cold docker / naive "
          f"{lm['cold docker'] / lm['naive exec']:.2f}x")


if __name__ == "__main__":
    main()
