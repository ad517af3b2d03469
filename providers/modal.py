"""The modal provider: each host is a Modal Sandbox, its lasting files on a Modal Volume.

``mngr create NAME --in modal`` makes a sandbox named ``mngr-NAMESPACE-HOST`` in the Modal App
``mngr`` (made on first use), tagged ``mngr-namespace`` and ``mngr-host``, so a listing finds
every running host from Modal alone. The helper's channel is an exec of ``python3 -I -S -c
STAGE1`` in it (``modal_exec``); every agent command works as on any other host.

What must outlive the sandbox lives on the host's Volume (same name), mounted at ``/mngr``:
the helper's host dir (``/mngr/host``: agent records, logs), the home dir agents run with
(``/mngr/home``, seeded from the image's, where work dirs go) and ``/mngr/modal/host.json``
(how to make the sandbox again). A sandbox needs no credentials of the user's to keep it:
Modal writes a Volume back when the sandbox ends, however it ends (``mngr`` stopping it, the
idle watcher's ``sync /mngr; kill -TERM 1`` from inside, Modal's own timeout). A stopped host
is its Volume without a sandbox: a listing reads its agents' records from the Volume without
starting anything, and any command that needs the host (``mngr start``) makes a sandbox again,
from the image in ``host.json``, with the same Volume.

Build args (``--build-arg``, each a string of options, as in the PRODUCT brief):

``--image REF``             a registry image (it must have python3 and tmux)
``--dockerfile PATH``       build this Dockerfile (its directory is the context)
``--block-network``         no network at all
``--cidr-allowlist CIDR``   outbound connections only to these networks (repeatable)
``--cpus N``, ``--memory SIZE``, ``--gpu TYPE[:COUNT]``, ``--region R``, ``--timeout DURATION``
``--secret NAME``           a Modal Secret's variables in the sandbox (repeatable)
``--env KEY=VALUE``         a variable in the sandbox (repeatable)

By default a sandbox has no open ports: only the user's Modal account reaches it (through
Modal's API, as mngr does). The ports of the URLs its first agent declares (``mngr create
--port``) get Modal's encrypted tunnels (``encrypted_ports``), kept in ``host.json`` for the
sandboxes made again later; ``mngr open`` reaches them there. A tunnel's URL is public: whoever
has it reaches the server behind it. Settings (``[providers.modal]``): ``app``, ``namespace``,
``image``, ``cpus``, ``memory``, ``gpu``, ``region``, ``timeout`` (default 24h, Modal's most),
``secrets``, ``idle_timeout`` (default 1h), ``idle_command``, ``call_timeout`` (seconds mngr
waits for Modal to answer a call, default 30).

Credentials are the user's Modal ones (``modal token new``, or ``MODAL_TOKEN_ID`` and
``MODAL_TOKEN_SECRET``), checked without importing the SDK: without them a listing skips Modal
(or reports, for hosts it made, one line saying how to set them) and everything else works.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from mngr.controller.channel import protocol
from mngr.controller.channel.bootstrap import stage1_argv
from mngr.controller.channel.stream import Stream
from mngr.controller.errors import ConfigError, MngrError, UsageError
from mngr.controller.paths import as_dict, changing_state_json, read_state_dict
from mngr.controller.plugin_spec import hookimpl
from mngr.controller.verbosity import timed

from .base import Provider, Reached
from .made_hosts import (
    HOST_NAME,
    MadeHostsProvider,
    build_arg_options,
    dockerfile_path,
    gone_agents,
    positive_number,
    stopped_agent,
)

T = TypeVar("T")

TAG_NAMESPACE = "mngr-namespace"
TAG_HOST = "mngr-host"
DEFAULT_APP = "mngr"
MOUNT = "/mngr"
# Every exec gets these (and the sandbox is created with them): the helper keeps its state on
# the Volume, agents get a home there; the daemon's socket stays off it.
HOST_ENV = {"MNGR_HOST_DIR": f"{MOUNT}/host", "HOME": f"{MOUNT}/home", "MNGR_DAEMON_SOCKET_DIR": "/run/mngr"}
HOST_JSON = "modal/host.json"  # on the Volume
SNAPSHOT_COPY = "/var/lib/mngr-snapshot"  # a snapshot's copy of the Volume, in the root file system
# The sandbox's entrypoint: waits, and ends (ending the sandbox) on SIGTERM, which Modal's init
# forwards to it: the idle watcher's `kill -TERM 1`.
ENTRYPOINT = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
STOP_HOST = f"sync {MOUNT}; kill -TERM 1"
DEFAULT_IDLE_TIMEOUT = "1h"
DEFAULT_TIMEOUT = 24 * 3600
DEFAULT_CALL_TIMEOUT = 30.0
NO_CREDENTIALS = ("modal: no credentials: run `modal token new`, or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET "
                  "(see modal.com/docs/reference/modal.config)")
_MAX_OBJECT_NAME = 64
_SETTINGS = frozenset(["app", "namespace", "image", "cpus", "memory", "gpu", "region", "timeout", "secrets",
                       "idle_timeout", "idle_command", "call_timeout"])
# Run once in each new sandbox, before anything else: the Volume's layout, the home seeded from
# the image's on the first run, a snapshot's files moved onto a new Volume, the tools checked.
_SETUP = r"""
set -e
mkdir -p /run/mngr "$M/host" "$M/modal"
chmod 700 /run/mngr "$M/host"
if [ ! -f "$M/modal/host.json" ]; then
  if [ -d "$S" ]; then
    cp -a "$S/." "$M/"
    rm -rf "$M/host/agents" "$M/host/shutdown.json" "$M/modal/host.json"
  fi
  if [ ! -d "$M/home" ]; then
    mkdir -p "$M/home.new"
    cp -a "$HOME/." "$M/home.new/" 2>/dev/null || true
    mv "$M/home.new" "$M/home"
  fi
fi
rm -rf "$S"
missing=""
for tool in python3 tmux; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -n "$missing" ]; then echo "missing:$missing"; exit 3; fi
cat > "$M/modal/host.json.new"
if [ -s "$M/modal/host.json.new" ]; then mv "$M/modal/host.json.new" "$M/modal/host.json"; else rm -f "$M/modal/host.json.new"; fi
"""


def credentials_problem() -> str:
    """"" if the Modal SDK would find credentials, else what to do; without importing it
    (that costs 0.4 s). Mirrors modal.config: variables first, then the active profile of
    ~/.modal.toml (or $MODAL_CONFIG_PATH)."""
    env = os.environ
    if env.get("MODAL_TOKEN_ID") and env.get("MODAL_TOKEN_SECRET"):
        return ""
    path = env.get("MODAL_CONFIG_PATH") or os.path.expanduser("~/.modal.toml")
    profiles: dict[str, Any] = {}
    if env.get("MODAL_IS_REMOTE") != "1":
        import tomllib

        try:
            with open(path, "rb") as handle:
                profiles = tomllib.load(handle)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            return f"modal: cannot read {path}: {exc}"
    active = [name for name, values in profiles.items() if isinstance(values, dict) and values.get("active") is True]
    profile = profiles.get(env.get("MODAL_PROFILE") or (active[0] if active else "default"))
    values = profile if isinstance(profile, dict) else {}

    def setting(key: str) -> Any:
        return env.get("MODAL_" + key.upper()) or values.get(key)

    if setting("token_id") and setting("token_secret"):
        return ""
    if setting("oauth_refresh_token") and setting("oauth_client_id"):
        return ""
    return NO_CREDENTIALS


class BuildArgs:
    """The build args of one new host, parsed and checked (settings fill what they leave)."""

    KNOWN = ("--image, --dockerfile, --block-network, --cidr-allowlist, --cpus, --memory, --gpu, --region, "
             "--timeout, --secret, --env")
    _VALUED = ("--image", "--dockerfile", "--cidr-allowlist", "--cpus", "--memory", "--gpu", "--region",
               "--timeout", "--secret", "--env")

    def __init__(self, raw: Sequence[str], settings: Mapping[str, Any]) -> None:
        self.raw = list(raw)
        self.image = ""
        self.dockerfile = ""
        self.block_network = False
        self.cidr_allowlist: list[str] = []
        self.secrets: list[str] = [str(name) for name in settings.get("secrets") or []]
        self.env: dict[str, str] = {}
        given: dict[str, str] = {}
        for option, value in build_arg_options(raw, "modal", ("--block-network",), self._VALUED, self.KNOWN):
            if option == "--block-network":
                self.block_network = True
            elif option == "--cidr-allowlist":
                self.cidr_allowlist.append(_cidr(value))
            elif option == "--secret":
                self.secrets.append(value)
            elif option == "--env":
                key, equals, env_value = value.partition("=")
                if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                    raise UsageError(f"--env needs KEY=VALUE, not {value!r}")
                self.env[key] = env_value
            else:
                given[option] = value
        if self.block_network and self.cidr_allowlist:
            raise UsageError("give --block-network or --cidr-allowlist, not both")
        self.image = given.get("--image", "")
        if "--dockerfile" in given:
            self.dockerfile = dockerfile_path(given["--dockerfile"])
        if self.image and self.dockerfile:
            raise UsageError("give --image or --dockerfile, not both")
        if not self.dockerfile and not self.image:
            self.image = str(settings.get("image") or "")

        def chosen(option: str, key: str) -> Any:
            return given[option] if option in given else settings.get(key)

        cpus = chosen("--cpus", "cpus")
        self.cpus = None if cpus is None else positive_number(cpus, "--cpus")
        memory = chosen("--memory", "memory")
        self.memory_mib = None if memory is None else _mebibytes(memory)
        gpu = chosen("--gpu", "gpu")
        self.gpu = None if gpu is None else _gpu(str(gpu))
        region = chosen("--region", "region")
        self.region = None if region is None else _region(str(region))
        timeout = chosen("--timeout", "timeout")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else _timeout(timeout)


def _mebibytes(value: Any) -> int:
    """Modal takes memory in MiB: ``4096``, ``512m``, ``4g``."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([mg]?)i?b?", str(value).strip().lower())
    if not match:
        raise UsageError(f"memory must look like 512m or 4g (MiB without a unit), not {value!r}")
    number = float(match.group(1)) * (1024 if match.group(2) == "g" else 1)
    if number < 1:
        raise UsageError(f"memory {value!r} is less than 1 MiB")
    return int(number)


def _gpu(value: str) -> str:
    # Modal checks the type; the count must be a whole number (the SDK's own check).
    if not re.fullmatch(r"[A-Za-z0-9!+_-]+(:[1-9][0-9]*)?", value):
        raise UsageError(f"--gpu must look like TYPE or TYPE:COUNT (such as A10G or H100:2), not {value!r}")
    return value


def _region(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]+", value):
        raise UsageError(f"--region must be a Modal region name such as us-east or eu-west-1, not {value!r}")
    return value


def _timeout(value: Any) -> int:
    from mngr.controller.durations import parse_duration

    seconds = int(parse_duration(value, "--timeout"))
    if not 0 < seconds <= DEFAULT_TIMEOUT:
        raise UsageError(f"--timeout must be at most 24h (Modal's limit on a sandbox's life), not {value!r}")
    return seconds


def _cidr(value: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise UsageError(f"--cidr-allowlist {value!r} is not a network such as 203.0.113.0/24") from exc


class ModalProvider(MadeHostsProvider):
    name = "modal"
    known_settings = _SETTINGS

    def __init__(self, settings: Mapping[str, Any] | None = None, hosts: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings, hosts)
        self.app_name = str(self.settings.get("app") or DEFAULT_APP)
        if not HOST_NAME.match(self.app_name):
            raise ConfigError(f"providers.modal.app {self.app_name!r}: letters, digits, '.', '_', '-'")
        self.call_timeout = positive_number(self.settings.get("call_timeout", DEFAULT_CALL_TIMEOUT), "call_timeout")
        self._foreign_volumes: set[str] = set()  # named like this namespace's, not its hosts (listing)
        self._ports_to_tunnel: dict[str, list[int]] = {}

    def ports_for_new_host(self, host: str, ports: Sequence[int]) -> None:
        """Tunnel ``ports`` of the sandbox made next for ``host`` (and of those made again)."""
        self._ports_to_tunnel[host] = list(ports)

    def reach_port(self, host: str, port: int, agent_id: str) -> Reached:
        """The sandbox's encrypted tunnel for ``port``: https, Modal's host name."""
        self.check_host(host)
        declared = self._host_json(self.object_name(host)).get("ports") or []
        if port not in declared:
            raise MngrError(f"port {port} of modal host {host} has no tunnel: Modal tunnels only the ports "
                            "declared when the host was made (mngr create --port)")
        sandbox = self._running(host)
        tunnels = self._call("reading the sandbox's tunnels", lambda: sandbox.tunnels(timeout=30))
        tunnel = tunnels.get(port)
        if tunnel is None:
            raise MngrError(f"port {port} of modal host {host} has no tunnel (Modal made none)")
        return Reached(str(tunnel.host), int(tunnel.port), "https")

    @functools.cached_property
    def _credentials_problem(self) -> str:
        """credentials_problem(), once per command: each listing asks several times."""
        return credentials_problem()

    def object_name(self, host: str) -> str:
        """The name of the host's sandbox and of its Volume (Modal allows 64 characters)."""
        name = f"mngr-{self.namespace}-{host}"
        if len(name) <= _MAX_OBJECT_NAME:
            return name
        return f"{name[:_MAX_OBJECT_NAME - 9]}-{zlib.crc32(name.encode()) & 0xFFFFFFFF:08x}"

    # -- the SDK, kept off every path that does not need it -----------------------------------

    def _sdk(self) -> Any:
        problem = self._credentials_problem
        if problem:
            raise MngrError(problem)
        try:
            import modal
        except Exception as exc:  # the SDK reads ~/.modal.toml at import, and fails on a bad one
            raise MngrError(f"modal: {_first_line(exc)}") from exc
        return modal

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` with mngr's own deadline (the SDK retries an unreachable Modal for about a
        minute) and its errors as one line naming ``what``."""
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["value"] = call()
            except BaseException as exc:  # handed to the caller's thread
                result["error"] = exc

        worker = threading.Thread(target=run, name=f"modal-{what}", daemon=True)
        with timed(f"modal: {what}"):  # -v: each call to Modal, with its time
            worker.start()
            worker.join(self.call_timeout)
            if worker.is_alive():
                raise MngrError(f"modal: no answer from Modal within {self.call_timeout:g} s ({what})")
        if "error" in result:
            error = result["error"]
            failure = self._failure(what, error)
            if failure is error:
                raise error
            raise failure from error
        value: T = result["value"]
        return value

    def _failure(self, what: str, exc: BaseException) -> BaseException:
        if isinstance(exc, MngrError) or not isinstance(exc, Exception):
            return exc
        modal = sys.modules.get("modal")
        errors = getattr(modal, "exception", None)
        kind = type(exc).__name__
        if errors is not None and isinstance(exc, errors.AuthError):
            return MngrError(f"modal: {_first_line(exc)}")
        if errors is not None and isinstance(exc, errors.ConnectionError):
            return MngrError(f"modal: cannot reach Modal ({what}): {_first_line(exc)}")
        if errors is not None and isinstance(exc, errors.InvalidError):
            return UsageError(f"modal refused {what}: {_first_line(exc)}")
        return MngrError(f"modal: {what} failed: {kind}: {_first_line(exc)}")

    @functools.cached_property
    def _app(self) -> Any:
        modal = self._sdk()
        app = self._call("finding the App", lambda: modal.App.lookup(self.app_name, create_if_missing=True))
        if _read_app_ids().get(self.app_name) != app.app_id:
            with changing_state_json(_APP_IDS) as ids:
                ids[self.app_name] = app.app_id
        return app

    def _app_id(self) -> str:
        """The App's id, as last looked up (an App's id does not change while it exists):
        a listing needs no lookup. An App deleted since is made again by the next create."""
        return _read_app_ids().get(self.app_name) or str(self._app.app_id)

    # -- which hosts ----------------------------------------------------------------------------

    @functools.cached_property
    def _seen(self) -> dict[str, dict[str, Any]] | MngrError:
        """host -> {"sandbox": id or "", "volume": bool}, as Modal shows them; or why not."""
        try:
            return self._discover()
        except MngrError as exc:
            return exc

    def _discover(self) -> dict[str, dict[str, Any]]:
        modal = self._sdk()
        app_id = self._app_id()
        registry = self._registry()
        by_sandbox = {entry.get("sandbox"): host for host, entry in registry.items() if entry.get("sandbox")}
        by_volume = {entry.get("volume"): host for host, entry in registry.items() if entry.get("volume")}
        sandboxes = self._call("listing sandboxes", lambda: list(
            modal.Sandbox.list(app_id=app_id, tags={TAG_NAMESPACE: self.namespace})))
        seen: dict[str, dict[str, Any]] = {}
        for sandbox in sandboxes:  # newest first: a host's newest sandbox wins
            host = by_sandbox.get(sandbox.object_id)
            if host is None:
                host = self._call("reading tags", sandbox.get_tags).get(TAG_HOST, "")
                if host and host in registry:  # a sandbox started elsewhere: remember its id
                    with self._registry_changes() as hosts:
                        hosts.setdefault(host, {"agents": []})["sandbox"] = sandbox.object_id
            if host and host not in seen:
                seen[host] = {"sandbox": sandbox.object_id, "volume": True}
        prefix = f"mngr-{self.namespace}-"
        volumes = self._call("listing volumes", lambda: [volume.name for volume in modal.Volume.objects.list()])
        for volume_name in volumes:
            if not volume_name or not volume_name.startswith(prefix):
                continue
            host = by_volume.get(volume_name)
            if host is None:  # one of another namespace with a longer name, or made elsewhere
                described = self._host_json(volume_name)
                if described.get("namespace") != self.namespace or not described.get("host"):
                    self._foreign_volumes.add(volume_name)
                    continue
                host = str(described["host"])
                with self._registry_changes() as hosts:
                    hosts.setdefault(host, {"agents": []})["volume"] = volume_name
            seen.setdefault(host, {"sandbox": "", "volume": True})
        return seen

    def _host_json(self, volume_name: str) -> dict[str, Any]:
        modal = self._sdk()

        def read() -> bytes:
            try:
                return b"".join(modal.Volume.from_name(volume_name).read_file(HOST_JSON))
            except (FileNotFoundError, modal.exception.NotFoundError):
                return b""

        try:
            content = json.loads(self._call("reading host.json", read) or b"{}")
        except ValueError:
            return {}
        return as_dict(content)

    def _hosts(self, fresh: bool = False) -> dict[str, dict[str, Any]]:
        if fresh:
            self.__dict__.pop("_seen", None)
        seen = self._seen
        if isinstance(seen, MngrError):
            raise seen
        return seen

    def known_hosts(self) -> Sequence[str]:
        if self._credentials_problem or isinstance(self._seen, MngrError):
            return []  # listing_problem says why, once
        return sorted(set(self._seen) | set(self._registry()))

    def listing_problem(self) -> str:
        """Without credentials: silence, unless this machine made Modal hosts (then say how
        to set them). Modal out of reach, or refusing: why."""
        problem = self._credentials_problem
        if problem:
            return problem if self._registry() else ""
        return str(self._seen) if isinstance(self._seen, MngrError) else ""

    def idle_defaults(self, host: str) -> Mapping[str, Any]:
        """An hour without activity stops the sandbox; its Volume keeps the work."""
        return {"timeout": self.settings.get("idle_timeout", DEFAULT_IDLE_TIMEOUT),
                "command": str(self.settings.get("idle_command", STOP_HOST))}

    # -- listing without starting anything ----------------------------------------------------

    def offline_listing(self, host: str) -> protocol.AgentList | None:
        entry = self._registry().get(host, {})
        problem = self._credentials_problem
        if problem:
            raise MngrError(problem)
        seen = self._hosts()
        if entry.get("pending"):
            return gone_agents(entry["pending"], "its creation did not finish (mngr destroy removes what was made)")
        state = seen.get(host)
        if state is None:
            return gone_agents(entry.get("agents", []), f"its sandbox and volume {self.object_name(host)} are gone "
                                                  "(removed outside mngr; mngr destroy forgets it)")
        if state["sandbox"]:
            return None
        return protocol.AgentList(agents=self._stopped_agents(host))

    def _stopped_agents(self, host: str) -> list[protocol.AgentInfo]:
        modal = self._sdk()
        volume = modal.Volume.from_name(self.object_name(host))

        def records() -> list[bytes]:
            try:
                entries = volume.listdir("host/agents")
            except (FileNotFoundError, modal.exception.NotFoundError):
                return []
            found = []
            for file_entry in entries:
                with contextlib.suppress(FileNotFoundError, modal.exception.NotFoundError):
                    found.append(b"".join(volume.read_file(f"{file_entry.path.rstrip('/')}/record.json")))
            return found

        found = (stopped_agent(data) for data in self._call("reading a stopped host's agents", records))
        agents = [agent for agent in found if agent is not None]
        return sorted(agents, key=lambda info: info.name)

    def forget_agent(self, host: str, name: str) -> None:
        """``mngr destroy`` of an agent whose host is gone or was never finished: what was made
        of the host goes too."""
        if self._registry().get(host, {}).get("pending"):
            self.discard_host(host)
        else:
            super().forget_agent(host, name)

    # -- reaching a host ---------------------------------------------------------------------------

    def open_stream(self, host: str, *, warm: bool = True) -> Stream:
        from .modal_exec import ExecStream, open_exec

        self.check_host(host)
        sandbox = self._running(host)
        process = self._call("starting the helper", lambda: open_exec(sandbox, stage1_argv("python3"), HOST_ENV))
        return ExecStream(host, process)

    def attach_argv(self, host: str, session: str) -> list[str]:
        self.check_host(host)
        sandbox = self._running(host)
        return [sys.executable, "-m", "mngr.providers.modal_exec", "attach", sandbox.object_id, session]

    def _running(self, host: str) -> Any:
        """The host's running sandbox; a stopped host is started (a new sandbox, same Volume)."""
        modal = self._sdk()
        state = self._hosts().get(host) or self._hosts(fresh=True).get(host)
        if state is None:
            raise MngrError(f"modal host {host!r} has no sandbox or volume (was {self.object_name(host)} removed?)")
        if state["sandbox"]:
            sandbox = self._call("finding the sandbox", lambda: modal.Sandbox.from_id(state["sandbox"]))
            if self._call("checking the sandbox", sandbox.poll) is None:
                return sandbox
        described = self._host_json(self.object_name(host))
        if not described:
            raise MngrError(f"modal host {host!r} cannot be started: its volume has no {HOST_JSON}")
        sandbox = self._start(host, BuildArgs(described.get("build_args", []), self.settings),
                              str(described.get("image", "")), first=False,
                              ports=[port for port in described.get("ports") or [] if isinstance(port, int)])
        state["sandbox"] = sandbox.object_id
        return sandbox

    # -- making and removing hosts ---------------------------------------------------------------

    def prepare_host(self, host: str, build_args: Sequence[str], snapshot: str = "", agent: str = "") -> bool:
        """Make the host's sandbox and Volume unless it exists (then start it if stopped); True
        if made now. From a ``snapshot`` (``snapshot_host``), the new host starts with the
        snapshotted host's files, without its agents' records."""
        self.check_host(host)
        parsed = BuildArgs(build_args, self.settings)  # bad build args fail before anything is made
        if snapshot and (parsed.image or parsed.dockerfile):
            raise UsageError("a modal snapshot brings its own image: no --image or --dockerfile with it")
        modal = self._sdk()
        image_id = ""
        if snapshot:
            meta = next((meta for meta in self.snapshots() if meta["id"] == snapshot), None)
            if meta is None:
                raise UsageError(f"no modal snapshot {snapshot!r}")
            image_id = str(meta["image"])
        if host in self._hosts():
            if build_args or snapshot:
                what = "--build-arg" if build_args else "a snapshot"
                raise UsageError(f"modal host {host!r} exists already: {what} applies to a new host only")
            self._running(host)
            return False
        name = self.object_name(host)
        if name in self._foreign_volumes:
            # Names can collide (namespace a, host b-c; namespace a-b, host c): never share one.
            raise UsageError(f"the modal volume {name} exists but is not a host of namespace {self.namespace!r} "
                             "(another namespace's, or left by a create that never finished): choose another "
                             f"host name, or delete it with `modal volume delete {name}`")
        if not image_id:
            image = self._image(modal, parsed)
            image_id = self._call("building the image", lambda: image.build(self._app).object_id)
        # Recorded before anything is made: a create cut short leaves a record mngr destroy finds.
        with self._registry_changes() as hosts:
            hosts[host] = {"agents": [], "pending": [agent or host], "volume": self.object_name(host)}
        try:
            self._start(host, parsed, image_id, first=True, ports=self._ports_to_tunnel.get(host, []))
        except BaseException:
            with contextlib.suppress(MngrError):
                self.discard_host(host)
            raise
        self.__dict__.pop("_seen", None)
        return True

    def _image(self, modal: Any, args: BuildArgs) -> Any:
        if args.dockerfile:
            return modal.Image.from_dockerfile(args.dockerfile, context_dir=os.path.dirname(args.dockerfile))
        if args.image:
            return modal.Image.from_registry(args.image)
        return modal.Image.debian_slim().apt_install("tmux", "git", "procps")

    def _start(self, host: str, args: BuildArgs, image_id: str, *, first: bool, ports: Sequence[int] = ()) -> Any:
        """A new sandbox for ``host`` from image ``image_id``, its Volume mounted, set up."""
        modal = self._sdk()
        app = self._app
        name = self.object_name(host)
        volume = self._call("making the volume", lambda: modal.Volume.from_name(
            name, create_if_missing=True, version=2))
        secrets = [modal.Secret.from_name(secret) for secret in args.secrets]
        options: dict[str, Any] = {
            "app": app, "name": name, "tags": {TAG_NAMESPACE: self.namespace, TAG_HOST: host},
            "image": modal.Image.from_id(image_id), "timeout": args.timeout, "volumes": {MOUNT: volume},
            "env": {**args.env, **HOST_ENV}, "secrets": secrets, "block_network": args.block_network,
        }
        if args.cidr_allowlist:
            options["outbound_cidr_allowlist"] = args.cidr_allowlist
        if ports:
            options["encrypted_ports"] = list(ports)
        for key, value in (("cpu", args.cpus), ("memory", args.memory_mib), ("gpu", args.gpu),
                           ("region", args.region)):
            if value is not None:
                options[key] = value
        try:
            sandbox = self._call("creating the sandbox", lambda: modal.Sandbox.create(*ENTRYPOINT, **options))
        except MngrError as exc:
            if not isinstance(exc.__cause__, modal.exception.AlreadyExistsError):
                raise
            running = self._call("finding the sandbox", lambda: modal.Sandbox.from_name(self.app_name, name))
            if first or self._call("reading tags", running.get_tags).get(TAG_NAMESPACE) != self.namespace:
                raise MngrError(f"modal: a sandbox named {name} runs already, and is not this host's "
                                "(another namespace's?): choose another host name") from exc
            return running  # another command started this host a moment ago
        with self._registry_changes() as hosts:
            hosts.setdefault(host, {"agents": []}).update(sandbox=sandbox.object_id, volume=name)
        described = {"namespace": self.namespace, "host": host, "build_args": args.raw, "image": image_id,
                     "ports": list(ports)}
        self._setup(host, sandbox, json.dumps(described).encode() if first else b"")
        return sandbox

    def _setup(self, host: str, sandbox: Any, host_json: bytes) -> None:
        from .modal_exec import open_exec

        env = {"M": MOUNT, "S": SNAPSHOT_COPY}

        def run() -> tuple[int, bytes]:
            process = open_exec(sandbox, ["/bin/sh", "-c", _SETUP], env)
            process.stdin.write(host_json)
            process.stdin.write_eof()
            process.stdin.drain()
            output = b"".join(process.stdout)
            return process.wait(), output + b"".join(process.stderr)

        status, output = self._call("setting up the sandbox", run)
        text = output.decode("utf-8", "replace").strip()
        if status == 3 and text.startswith("missing:"):
            raise MngrError(f"the image of modal host {host!r} has no {', '.join(text[8:].split())}: mngr needs "
                            "python3 and tmux on a host (mngr bootstrap writes a Dockerfile that has them)")
        if status != 0:
            raise MngrError(f"setting up modal host {host!r} failed (exit status {status}): "
                            f"{text.splitlines()[-1] if text else 'no output'}")

    def discard_host(self, host: str) -> None:
        """End the host's sandbox and delete its Volume (and forget the host)."""
        modal = self._sdk()
        name = self.object_name(host)
        entry = self._registry().get(host, {})

        def remove() -> None:
            ended = set()
            candidates = []
            if entry.get("sandbox"):
                with contextlib.suppress(modal.exception.NotFoundError):
                    candidates.append(modal.Sandbox.from_id(entry["sandbox"]))
            with contextlib.suppress(modal.exception.NotFoundError):
                candidates.append(modal.Sandbox.from_name(self.app_name, name))
            for sandbox in candidates:
                if sandbox.object_id in ended:
                    continue
                # Names can collide (namespace a, host b-c; namespace a-b, host c): check it is ours.
                if sandbox.poll() is None and sandbox.get_tags().get(TAG_NAMESPACE) == self.namespace:
                    sandbox.terminate()
                ended.add(sandbox.object_id)
            described = self._host_json(name) if not entry.get("pending") else {"namespace": self.namespace}
            if described.get("namespace", self.namespace) == self.namespace:
                with contextlib.suppress(modal.exception.NotFoundError):
                    modal.Volume.objects.delete(name)

        self._call("removing the host", remove)
        with self._registry_changes() as hosts:
            hosts.pop(host, None)
        self.__dict__.pop("_seen", None)

    def host_emptied(self, host: str) -> None:
        """The last agent of a modal host was destroyed: its sandbox and Volume go with it."""
        self.discard_host(host)

    # -- snapshots: file-system snapshots of the sandbox, the Volume copied in ----------------------

    def _snapshot_index(self) -> Any:
        modal = self._sdk()
        return modal.Volume.from_name(f"mngr-{self.namespace}--snapshots", create_if_missing=True, version=2)

    def snapshot_host(self, host: str, meta: dict[str, Any]) -> int | None:
        """A file-system snapshot of the host's sandbox (kept until destroyed), with a copy of
        its Volume in it: a snapshot of the file system alone leaves mounted Volumes out."""
        from .modal_exec import open_exec

        sandbox = self._running(host)
        copy = (f"rm -rf {SNAPSHOT_COPY} && mkdir -p {SNAPSHOT_COPY} && cp -a {MOUNT}/. {SNAPSHOT_COPY}/"
                f" && rm -rf {SNAPSHOT_COPY}/host/agents && du -sk {SNAPSHOT_COPY} | cut -f1")

        def run(script: str) -> bytes:
            process = open_exec(sandbox, ["/bin/sh", "-c", script], {})
            process.stdin.write_eof()
            process.stdin.drain()
            output = b"".join(process.stdout)
            if process.wait() != 0:
                raise MngrError(f"could not snapshot modal host {host!r}: "
                                f"{b''.join(process.stderr).decode('utf-8', 'replace').strip()}")
            return output

        size = int(self._call("copying the volume", lambda: run(copy)).split()[0]) * 1024
        try:
            image = self._call("snapshotting the sandbox", lambda: sandbox.snapshot_filesystem(ttl=None))
        finally:
            with contextlib.suppress(MngrError):
                self._call("removing the copy", lambda: run(f"rm -rf {SNAPSHOT_COPY}"))
        record = {**meta, "image": image.object_id, "bytes": size, "namespace": self.namespace}
        index = self._snapshot_index()

        def upload() -> None:
            import io

            with index.batch_upload(force=True) as batch:
                batch.put_file(io.BytesIO(json.dumps(record).encode()), f"/{meta['id']}.json")

        self._call("recording the snapshot", upload)
        return size

    def snapshots(self) -> list[dict[str, Any]]:
        if self._credentials_problem:
            return []
        modal = self._sdk()

        def read_all() -> list[bytes]:
            try:
                index = modal.Volume.from_name(f"mngr-{self.namespace}--snapshots")
                entries = index.listdir("/")
            except (FileNotFoundError, modal.exception.NotFoundError):
                return []
            found = []
            for file_entry in entries:
                if file_entry.path.endswith(".json"):
                    with contextlib.suppress(FileNotFoundError, modal.exception.NotFoundError):
                        found.append(b"".join(index.read_file(file_entry.path)))
            return found

        try:
            contents = self._call("listing snapshots", read_all)
        except MngrError:
            return []
        found = []
        for data in contents:
            with contextlib.suppress(ValueError):
                meta = json.loads(data)
                if isinstance(meta, dict) and "id" in meta and "image" in meta:
                    found.append(meta)
        return found

    def destroy_snapshot(self, snapshot_id: str) -> bool:
        meta = next((meta for meta in self.snapshots() if meta["id"] == snapshot_id), None)
        if meta is None:
            return False
        modal = self._sdk()
        from modal import experimental

        def remove() -> None:
            with contextlib.suppress(modal.exception.NotFoundError):
                experimental.image_delete(meta["image"])
            self._snapshot_index().remove_file(f"/{snapshot_id}.json")

        self._call("destroying the snapshot", remove)
        return True


_APP_IDS = "modal_apps.json"


def _read_app_ids() -> dict[str, str]:
    return {str(name): str(app_id) for name, app_id in read_state_dict(_APP_IDS).items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@hookimpl
def mngr_providers() -> list[type[Provider]]:
    return [ModalProvider]
