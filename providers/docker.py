"""The docker provider: each host is a container, made by mngr from an image it builds or is given.

``mngr create NAME --in docker`` makes a container named ``mngr-NAME`` (``--host H`` names
the host, and so shares one container between agents) and runs the helper in it with
``docker exec -i CONTAINER python3 -I -S -c STAGE1``: the same bootstrap and helper as every
other host. Containers and the images mngr builds carry ``mngr.*`` labels, so listings find
them with no local database; a small registry of hosts and their agents' names
(``docker_hosts.NAMESPACE.json`` in the state dir) only lets a listing say what became of
hosts it cannot see: an engine that does not answer, a container removed behind mngr's back.

A container's main process only waits (and ends on SIGTERM): agents run in its tmux
server, started by the helper. Stopping the container (``docker stop``, or the idle
watcher's command ``kill -TERM 1`` from inside) stops every agent in it; their records stay
in the container's file system, where a listing reads them without starting it
(``docker cp`` works on a stopped container), and ``mngr start`` starts the container
again, then the agents.

Build args (``--build-arg``, each a string of options, as in the PRODUCT brief):

``--image IMAGE``         run this image (it must have python3 and tmux)
``--dockerfile PATH``     build this Dockerfile (its directory is the context) and run it
``--block-network``       no network at all (``network_mode=none``)
``--network NETWORK``     the container's network: ``host`` (this machine's, so a model gateway
                          or proxy on its loopback is reachable), ``bridge``, or a network by name
``--cidr-allowlist CIDR`` refused: only the modal provider can limit where a host connects
``--cpus N``, ``--memory SIZE``   resource limits (also ``[providers.docker] cpus, memory``)

With neither ``--image`` nor ``--dockerfile``, mngr builds (once) its base image: the
configured ``base_image`` (default ``debian:bookworm-slim``) with python3, tmux, git and
procps added when missing.

Settings (``[providers.docker]``): ``base_image``, ``image`` (instead of building one),
``network``, ``cpus``, ``memory``, ``idle_timeout`` (default 1h), ``idle_command`` (default: stop the
container), ``namespace`` (default: your user name). An engine may serve several users:
mngr sees only the containers of its namespace, named ``mngr-NAMESPACE-HOST``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mngr.controller.channel import protocol
from mngr.controller.channel.bootstrap import daemon_socket_path, stage1_argv
from mngr.controller.channel.stream import ProcessStream, SocketStream, Stream
from mngr.controller.errors import MngrError, UsageError
from mngr.controller.paths import agent_clis_dir, state_dir
from mngr.controller.plugin_spec import hookimpl
from mngr.controller.verbosity import timed
from mngr.remote_helper import daemon_address

from . import docker_engine as engine
from .base import Provider, Reached, tmux_attach_argv
from .made_hosts import (
    MadeHostsProvider,
    build_arg_options,
    dockerfile_path,
    gone_agents,
    positive_number,
    stopped_agent,
)

LABEL_HOST = "mngr.host"
LABEL_NAMESPACE = "mngr.namespace"
LABEL_BUILD_ARGS = "mngr.build-args"
LABEL_IMAGE = "mngr.image"
LABEL_SNAPSHOT = "mngr.snapshot"  # on a committed image: the snapshot's id
LABEL_SNAPSHOT_META = "mngr.snapshot.meta"  # ... and what mngr knows of it, as JSON
SNAPSHOT_REPOSITORY = "mngr-snapshot"
CONTAINER_PREFIX = "mngr-"
DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
DEFAULT_IDLE_TIMEOUT = "1h"
# The container's main process: waits, and leaves at once on SIGTERM (a process with PID 1
# ignores signals it has no handler for, so `docker stop` would wait 10 s and kill it).
KEEP_RUNNING = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
STOP_CONTAINER = "kill -TERM 1"
MNGR_DIR_IN_HOME = ".mngr"  # the helper's host dir: ~/.mngr of the image's user
SOCKET_DIR_IN_CONTAINER = "/run/mngr"
# The user's agent CLI bundles, mounted read-only: an agent's CLI needs no copy per container.
AGENT_CLIS_IN_CONTAINER = "/mngr-agent-clis"
_NEEDED = ("python3", "tmux")
_BASE_PACKAGES = "python3 tmux git procps ca-certificates"
_SETTINGS = frozenset(["base_image", "image", "network", "cpus", "memory", "idle_timeout", "idle_command",
                       "namespace"])
# What docker accepts as a network's name (and host, bridge, none, which name built-in ones).
_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class BuildArgs:
    """The build args of one new host, parsed and checked."""

    KNOWN = "--image, --dockerfile, --block-network, --network, --cpus, --memory (and --cidr-allowlist on modal)"

    def __init__(self, raw: Sequence[str]) -> None:
        self.raw = list(raw)
        self.image = ""
        self.dockerfile = ""
        self.block_network = False
        self.network = ""
        self.cpus: float | None = None
        self.memory = ""
        valued = ("--image", "--dockerfile", "--network", "--cpus", "--memory", "--cidr-allowlist")
        for option, value in build_arg_options(raw, "docker", ("--block-network",), valued, self.KNOWN):
            if option == "--block-network":
                self.block_network = True
            elif option == "--cidr-allowlist":
                raise UsageError("--cidr-allowlist is not available on the docker provider: only the modal "
                                 "provider limits where a host may connect (use --block-network for no network)")
            elif option == "--image":
                self.image = value
            elif option == "--dockerfile":
                self.dockerfile = dockerfile_path(value)
            elif option == "--network":
                self.network = network_name(value, "--network")
            elif option == "--cpus":
                self.cpus = positive_number(value, "--cpus")
            else:
                self.memory = _memory(value)
        if self.image and self.dockerfile:
            raise UsageError("give --image or --dockerfile, not both")
        if self.block_network and self.network:
            raise UsageError("give --block-network or --network, not both")


def network_name(value: Any, what: str) -> str:
    text = str(value)
    if not _NETWORK_NAME.fullmatch(text):
        raise UsageError(f"{what} must be host, bridge or the name of a docker network, not {value!r}")
    return text


def _memory(value: Any) -> str:
    text = str(value).strip().lower()
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?[bkmg]?", text):
        raise UsageError(f"memory must look like 512m or 4g, not {value!r}")
    return text


class DockerProvider(MadeHostsProvider):
    name = "docker"
    known_settings = _SETTINGS

    def __init__(self, settings: Mapping[str, Any] | None = None, hosts: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings, hosts)
        self._ports_to_publish: dict[str, list[int]] = {}

    def ports_for_new_host(self, host: str, ports: Sequence[int]) -> None:
        """Publish ``ports`` of the container made next for ``host`` on this machine's
        127.0.0.1 (each on a port the engine picks): reachable where the container's own
        address is not (Docker Desktop), and by nobody else."""
        self._ports_to_publish[host] = list(ports)

    def container_name(self, host: str) -> str:
        return f"{CONTAINER_PREFIX}{self.namespace}-{host}"

    # -- which hosts ----------------------------------------------------------------------

    @functools.cached_property
    def _seen(self) -> dict[str, dict[str, Any]] | engine.EngineUnavailable:
        """host -> its container as the engine lists it; or why the engine did not answer."""
        try:
            found = engine.containers(f"{LABEL_NAMESPACE}={self.namespace}")
        except engine.EngineUnavailable as exc:
            return exc
        return {container["Labels"][LABEL_HOST]: container for container in found}

    def known_hosts(self) -> Sequence[str]:
        remembered = list(self._registry())
        if isinstance(self._seen, engine.EngineUnavailable):
            return remembered  # each reports the engine's silence (offline_listing)
        return sorted(set(self._seen) | set(remembered))

    def idle_defaults(self, host: str) -> Mapping[str, Any]:
        """An hour without activity stops the container (``kill -TERM 1`` from inside)."""
        return {"timeout": self.settings.get("idle_timeout", DEFAULT_IDLE_TIMEOUT),
                "command": str(self.settings.get("idle_command", STOP_CONTAINER))}

    # -- listing without starting anything ----------------------------------------------

    def offline_listing(self, host: str) -> protocol.AgentList | None:
        """The agents of a host that is not running, read without starting it; None when it
        runs (ask its helper). Raises a MngrError for a host that cannot be read at all."""
        seen = self._containers()
        container = seen.get(host)
        if container is None:
            problem = f"its container {self.container_name(host)} was removed outside mngr (mngr destroy forgets it)"
            return gone_agents(self._registry().get(host, {}).get("agents", []), problem)
        if container.get("State") == "running":
            return None
        return protocol.AgentList(agents=self._stopped_agents(container))

    def _stopped_agents(self, container: dict[str, Any]) -> list[protocol.AgentInfo]:
        import io
        import tarfile

        data = engine.archive(container["Id"], f"{_home_in(container['Id'])}/{MNGR_DIR_IN_HOME}/agents")
        agents = []
        if data:
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                for member in archive.getmembers():
                    if not member.isfile() or not member.name.endswith("/record.json"):
                        continue
                    handle = archive.extractfile(member)
                    agent = stopped_agent(handle.read()) if handle else None
                    if agent is not None:
                        agents.append(agent)
        return sorted(agents, key=lambda info: info.name)

    # -- reaching a host -------------------------------------------------------------------

    def open_stream(self, host: str, *, warm: bool = True) -> Stream:
        self.check_host(host)
        self._ensure_running(host)
        if warm:
            # The host daemon listens in a directory the container shares with this machine.
            path = daemon_socket_path("", "", self._socket_dir(host))
            if len(path) <= daemon_address.MAX_SOCKET_PATH and os.path.exists(path):
                try:
                    return SocketStream.connect(host, path)
                except OSError:
                    pass  # a daemon of a stopped container: bootstrap starts a new one
        _need_docker_cli()
        return ProcessStream(host, ["docker", "exec", "-i", self.container_name(host), *stage1_argv("python3")])

    def _socket_dir(self, host: str) -> str:
        """This machine's side of the directory where the host daemon puts its socket."""
        import zlib

        key = zlib.crc32(f"{self.namespace}/{host}".encode()) & 0xFFFFFFFF
        return os.path.join(state_dir(), "dk", f"{key:08x}")

    def attach_argv(self, host: str, session: str) -> list[str]:
        self.check_host(host)
        _need_docker_cli()
        return ["docker", "exec", "-it", self.container_name(host), *tmux_attach_argv(session)]

    def reach_port(self, host: str, port: int, agent_id: str) -> Reached:
        """A port the container publishes for ``port`` on this machine (``mngr create
        --port``), else the container's own address on its network (``network = "host"``:
        this machine's). A server listening only on the container's loopback cannot be
        reached from outside it, published or not: that is said, with the fix."""
        self.check_host(host)
        details = engine.inspect_container(self.container_name(host))
        network = details.get("NetworkSettings") or {}
        mode = str((details.get("HostConfig") or {}).get("NetworkMode") or "")
        if mode == "host" and engine.quick():
            return Reached("localhost", port)  # this machine's network: the agent's URL as it is
        if mode == "none":
            raise MngrError(f"docker host {host} has no network (--block-network): its ports cannot be reached")
        published = [int(binding["HostPort"]) for binding in (network.get("Ports") or {}).get(f"{port}/tcp") or []
                     if binding.get("HostPort") and binding.get("HostIp") in (None, "", "0.0.0.0", "127.0.0.1", "::")]
        if not engine.quick():
            raise MngrError(f"docker host {host}'s engine is on another machine ({engine.engine_address()}): "
                            "its containers' ports cannot be reached from here")
        addresses = [str(attached.get("IPAddress") or attached.get("GlobalIPv6Address") or "")
                     for attached in (network.get("Networks") or {}).values()]
        address = next((address for address in addresses if address), "")
        # A published port's proxy takes connections whatever is behind it: the container's
        # address tells whether the server listens beyond its loopback (at once where it is
        # routable; where it is not, as on Docker Desktop, the published port is all there is).
        problem = _connect_problem(address, port, 0.5 if published else 2.0) if address else "no address"
        if problem == "refused":
            raise MngrError(f"port {port} of docker host {host} listens only on the container's loopback; "
                            "make it listen on 0.0.0.0")
        if published:
            return Reached("127.0.0.1", published[0])
        if problem:
            raise MngrError(f"docker host {host}'s address {address or '(none)'} cannot be reached from here "
                            f"({problem}): declare the port when creating the agent (mngr create --port) "
                            "to have it published")
        return Reached(address, port)

    def _ensure_running(self, host: str) -> None:
        seen = self._containers()
        container = seen.get(host)
        if container is None:
            seen = self._containers(fresh=True)
            container = seen.get(host)
            if container is None:
                raise MngrError(f"docker host {host!r} has no container (was {self.container_name(host)} removed?)")
        if container.get("State") != "running":
            engine.start(container["Id"])
            container["State"] = "running"

    def _containers(self, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """host -> its container (``fresh``: asked anew); EngineUnavailable if no engine."""
        if fresh:
            self.__dict__.pop("_seen", None)
        seen = self._seen
        if isinstance(seen, engine.EngineUnavailable):
            raise seen
        return seen

    # -- making and removing hosts ---------------------------------------------------------

    def prepare_host(self, host: str, build_args: Sequence[str], snapshot: str = "", agent: str = "") -> bool:
        """Make the host's container unless it exists (then start it if stopped); True if
        it was made now (create removes it again if the agent cannot be created). From a
        ``snapshot`` (an image ``snapshot_host`` committed), the container starts with the
        snapshotted host's files, its agents' records left out."""
        self.check_host(host)
        parsed = BuildArgs(build_args)  # bad build args (and settings) fail before anything is made
        network = self._network(parsed)
        if snapshot and (parsed.image or parsed.dockerfile):
            raise UsageError("a docker snapshot brings its own image: no --image or --dockerfile with it")
        seen = self._containers()
        if host in seen:
            if build_args or snapshot:
                what = "--build-arg" if build_args else "a snapshot"
                raise UsageError(f"docker host {host!r} exists already: {what} applies to a new host only")
            self._ensure_running(host)
            return False
        client = engine.sdk_client()
        image = f"{SNAPSHOT_REPOSITORY}:{snapshot}" if snapshot else self._image_for(client, parsed)
        import docker

        options: dict[str, Any] = {
            "name": self.container_name(host), "hostname": host[:63], "detach": True,
            "labels": {LABEL_HOST: host, LABEL_NAMESPACE: self.namespace,
                       LABEL_BUILD_ARGS: json.dumps(list(build_args))},
            "init": False, "command": KEEP_RUNNING,
        }
        if network:
            options["network_mode"] = network
        if network not in ("host", "none") and self._ports_to_publish.get(host):
            options["ports"] = {f"{port}/tcp": ("127.0.0.1", None) for port in self._ports_to_publish[host]}
        if engine.quick():  # an engine on this machine: its bind mounts are this machine's
            socket_dir = self._socket_dir(host)
            os.makedirs(os.path.dirname(socket_dir), mode=0o700, exist_ok=True)
            os.makedirs(socket_dir, exist_ok=True)
            # Whoever the image runs as must be able to make the socket here; the parent,
            # 0700 and yours, keeps everyone else out.
            os.chmod(socket_dir, 0o777)
            clis = agent_clis_dir()
            os.makedirs(clis, mode=0o755, exist_ok=True)
            options["volumes"] = {socket_dir: {"bind": SOCKET_DIR_IN_CONTAINER, "mode": "rw"},
                                  clis: {"bind": AGENT_CLIS_IN_CONTAINER, "mode": "ro"}}
            options["environment"] = {"MNGR_DAEMON_SOCKET_DIR": SOCKET_DIR_IN_CONTAINER,
                                      "MNGR_SHARED_CLIS_DIR": AGENT_CLIS_IN_CONTAINER}
        cpus = parsed.cpus if parsed.cpus is not None else self.settings.get("cpus")
        if cpus is not None:
            options["nano_cpus"] = int(positive_number(cpus, "providers.docker.cpus") * 1e9)
        memory = parsed.memory or (_memory(self.settings["memory"]) if self.settings.get("memory") else "")
        if memory:
            options["mem_limit"] = memory
        try:
            with timed(f"docker {host}: run container {self.container_name(host)} from {image}"):
                container = client.containers.run(image, **options)
        except docker.errors.APIError as exc:
            # The engine may have made the container and failed to start it (a network
            # that does not exist): it goes too.
            self.discard_host(host)
            raise MngrError(f"could not create docker host {host!r}: {exc.explanation or exc}") from exc
        try:
            self._check_tools(container, image)
            if snapshot:  # the new host's agents are made anew: not the snapshotted host's
                leftovers = f'"$HOME/{MNGR_DIR_IN_HOME}/agents" "$HOME/{MNGR_DIR_IN_HOME}/host/shutdown.json"'
                container.exec_run(["/bin/sh", "-c", f"rm -rf {leftovers}"])
        except BaseException:
            self.discard_host(host)
            raise
        with self._registry_changes() as hosts:
            hosts.setdefault(host, {"agents": []})
        self.__dict__.pop("_seen", None)
        return True

    def _network(self, parsed: BuildArgs) -> str:
        """The container's network mode; "" for the engine's default (its bridge)."""
        if parsed.block_network:
            return "none"
        if parsed.network:
            return parsed.network
        configured = self.settings.get("network")
        return network_name(configured, "providers.docker.network") if configured else ""

    def _check_tools(self, container: Any, image: str) -> None:
        script = "; ".join(f"command -v {tool} >/dev/null 2>&1 || echo {tool}" for tool in _NEEDED)
        result = container.exec_run(["/bin/sh", "-c", script])
        missing = result.output.decode("utf-8", "replace").split() if result.exit_code == 0 else ["/bin/sh"]
        if missing:
            raise MngrError(f"image {image!r} has no {', '.join(missing)}: mngr needs python3 and tmux on a host "
                            "(mngr bootstrap writes a Dockerfile that has them)")

    def discard_host(self, host: str) -> None:
        """Remove the host's container (and forget the host)."""
        import docker

        with contextlib.suppress(docker.errors.NotFound):
            container = engine.sdk_client().containers.get(self.container_name(host))
            # Names can collide (namespace a, host b-c; namespace a-b, host c): check it is ours.
            if (container.labels.get(LABEL_NAMESPACE), container.labels.get(LABEL_HOST)) == (self.namespace, host):
                container.remove(force=True)
        with self._registry_changes() as hosts:
            hosts.pop(host, None)
        self.__dict__.pop("_seen", None)
        import shutil

        shutil.rmtree(self._socket_dir(host), ignore_errors=True)

    def host_emptied(self, host: str) -> None:
        """The last agent of a docker host was destroyed: the container goes with it."""
        self.discard_host(host)

    # -- snapshots: committed images -------------------------------------------------------

    def snapshot_host(self, host: str, meta: dict[str, Any]) -> int | None:
        """``docker commit`` of the host's container (paused meanwhile): every file of it,
        the agent's work dir and state included."""
        import docker

        client = engine.sdk_client()
        labels = {LABEL_SNAPSHOT: meta["id"], LABEL_SNAPSHOT_META: json.dumps(meta),
                  LABEL_NAMESPACE: self.namespace}
        try:
            container = client.containers.get(self.container_name(host))
            image = container.commit(repository=SNAPSHOT_REPOSITORY, tag=meta["id"], conf={"Labels": labels},
                                     message=f"mngr snapshot of {meta.get('agent', '')} on {host}")
        except docker.errors.APIError as exc:
            raise MngrError(f"could not snapshot docker host {host!r}: {exc.explanation or exc}") from exc
        return int(image.attrs.get("Size", 0))

    def snapshots(self) -> list[dict[str, Any]]:
        if not engine.quick():
            return []
        try:
            status, body = engine.request("GET", "/images/json", {
                "filters": json.dumps({"label": [LABEL_SNAPSHOT, f"{LABEL_NAMESPACE}={self.namespace}"]})})
        except engine.EngineUnavailable:
            return []
        if status != 200:
            return []
        found = []
        for image in json.loads(body):
            try:
                meta = json.loads((image.get("Labels") or {})[LABEL_SNAPSHOT_META])
            except (KeyError, ValueError):
                continue
            # A destroyed snapshot a container still runs from stays, untagged, until then.
            tagged = f"{SNAPSHOT_REPOSITORY}:{meta.get('id') if isinstance(meta, dict) else ''}"
            if isinstance(meta, dict) and "id" in meta and tagged in (image.get("RepoTags") or []):
                found.append({**meta, "bytes": int(image.get("Size", 0))})
        return found

    def destroy_snapshot(self, snapshot_id: str) -> bool:
        if not any(meta["id"] == snapshot_id for meta in self.snapshots()):
            return False
        engine.sdk_client().images.remove(f"{SNAPSHOT_REPOSITORY}:{snapshot_id}", force=True)
        return True

    # -- images ------------------------------------------------------------------------------

    def _image_for(self, client: Any, args: BuildArgs) -> str:
        import docker

        if args.image or (not args.dockerfile and self.settings.get("image")):
            image = args.image or str(self.settings["image"])
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                try:
                    client.images.pull(image)
                except docker.errors.APIError as exc:
                    raise MngrError(f"image {image!r} is not here and could not be pulled: "
                                    f"{exc.explanation or exc}") from exc
            return image
        if args.dockerfile:
            with open(args.dockerfile, "rb") as handle:
                content = handle.read()
            return self._build(client, os.path.dirname(args.dockerfile), os.path.basename(args.dockerfile), content)
        base = str(self.settings.get("base_image") or DEFAULT_BASE_IMAGE)
        dockerfile = (
            f"FROM {base}\n"
            "# mngr needs python3 and tmux on a host; install what the base image lacks.\n"
            "RUN if command -v python3 >/dev/null && command -v tmux >/dev/null && command -v git >/dev/null;"
            " then exit 0; fi;"
            f" apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"
            f" {_BASE_PACKAGES} && rm -rf /var/lib/apt/lists/*\n"
        ).encode()
        return self._build(client, None, "Dockerfile", dockerfile)

    def _build(self, client: Any, context: str | None, dockerfile: str, content: bytes) -> str:
        """An image built with the classic builder, tagged by what it is built from, reused."""
        import hashlib
        import io

        import docker

        digest = hashlib.sha256(content + (context or "").encode()).hexdigest()[:16]
        tag = f"mngr-image:{digest}"
        try:
            client.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            pass
        if context is None:
            where: dict[str, Any] = {"fileobj": io.BytesIO(content), "labels": {LABEL_IMAGE: "base"}}
        else:
            where = {"path": context, "dockerfile": dockerfile, "labels": {LABEL_IMAGE: "dockerfile"}}
        where["labels"][LABEL_NAMESPACE] = self.namespace
        try:
            _built(client.api.build(tag=tag, rm=True, forcerm=True, decode=True, **where), tag)
            client.images.get(tag)
        except docker.errors.ImageNotFound as exc:  # the build said nothing wrong, yet made nothing
            raise MngrError(f"building the image failed: {tag} was not made") from exc
        except docker.errors.APIError as exc:
            raise MngrError(f"building the image failed: {exc.explanation or exc}") from exc
        return tag


_STEP = re.compile(r"Step (\d+)/(\d+) : (.*)")


def _built(output: Any, tag: str) -> None:
    """Follow a build's output (decoded JSON lines), its steps shown on the progress line;
    MngrError with the builder's own words if it failed."""
    from mngr.controller.progress import Progress

    last = ""
    with Progress(f"building image {tag}", unit="steps") as line:
        for chunk in output:
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error") or chunk.get("errorDetail"):
                detail = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message") or last
                raise MngrError(f"building the image failed: {str(detail).strip()}")
            text = str(chunk.get("stream") or "").strip()
            if not text:
                continue
            last = text.splitlines()[-1]
            step = _STEP.match(text)
            if step:
                line.update(done=int(step[1]) - 1, total=int(step[2]), note=step[3][:60])


def _home_in(container_id: str) -> str:
    """The home directory of the user a (maybe stopped) container runs as: root's unless
    the image names another user, whose home /etc/passwd in the container tells."""
    details = engine.inspect_container(container_id)
    user = str((details.get("Config") or {}).get("User") or "").split(":")[0]
    if user in ("", "0", "root"):
        return "/root"
    import io
    import tarfile

    data = engine.archive(container_id, "/etc/passwd")
    if data:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = archive.extractfile(archive.getmembers()[0])
            lines = member.read().decode("utf-8", "replace").splitlines() if member else []
        for line in lines:
            fields = line.split(":")
            if len(fields) >= 6 and user in (fields[0], fields[2]):
                return fields[5]
    return "/home/" + user


def _connect_problem(address: str, port: int, timeout: float) -> str:
    """"" if ``address``:``port`` takes a connection from here; "refused", or why not."""
    import socket

    try:
        with socket.create_connection((address, port), timeout=timeout):
            return ""
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return str(exc) or type(exc).__name__


def _need_docker_cli() -> None:
    import shutil

    if shutil.which("docker") is None:
        raise MngrError("the docker provider needs the docker command (the Docker CLI) on PATH")


@hookimpl
def mngr_providers() -> list[type[Provider]]:
    return [DockerProvider]
