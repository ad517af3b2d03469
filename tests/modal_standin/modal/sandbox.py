"""``modal.Sandbox``: each sandbox a Docker container, each exec a ``docker exec`` client.

What is kept from Modal, because a provider depends on it:

- a sandbox runs while its entrypoint (``*args`` of ``create``) runs; PID 1 forwards TERM,
  INT and HUP to the entrypoint (Modal's PID 1 is dumb-init), so ``kill -TERM 1`` from inside
  ends the sandbox, with the entrypoint's exit status;
- ``timeout`` (at most 24 h) ends it: ``wait()`` raises SandboxTimeoutError and
  ``returncode`` is 124; ``terminate()`` gives 137 and ``wait()`` raises SandboxTerminatedError;
- ``list`` yields running sandboxes only, newest first; ``from_id`` and ``from_name(...,
  include_terminated=True)`` still find finished ones; a finished sandbox's files are gone
  (its container is removed) unless they were snapshotted or are on a Volume;
- ``exec`` on a finished sandbox raises ConflictError; the client-side checks of ``create``
  and ``exec`` raise the SDK's exceptions with the SDK's messages.

Timeouts are enforced whenever any process looks at a sandbox (every call here does, and
``wait()`` looks every 0.2 s), not by a clock of their own; ``modal._standin.simulate_timeout``
ends one at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Literal

from . import _core
from .app import App
from .container_process import ContainerProcess
from .exception import (
    AlreadyExistsError,
    ClientClosed,
    ConflictError,
    ConnectionError,
    DeprecationError,
    InvalidError,
    NotFoundError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)
from .image import Image
from .io_streams import StreamReader, StreamWriter
from .secret import Secret
from .stream_type import StreamType
from .volume import Volume

ARG_MAX_BYTES = 2**16  # the SDK's limit on the total length of a command's arguments
MAX_TIMEOUT = 24 * 3600  # Modal's documented limit on a sandbox's lifetime
SNAPSHOT_REPOSITORY = "modal-standin-snapshot"
# GPU types of Modal's GPU guide. The SDK checks only the "TYPE:COUNT" shape; Modal's server
# refuses an unknown type (with a message we cannot see here).
GPU_TYPES = frozenset(["T4", "L4", "A10", "A10G", "L40S", "A100", "A100-40GB", "A100-80GB", "RTX-PRO-6000",
                       "H100", "H100!", "H200", "B200", "B200+"])
# Modal's region names are broad ("us", "eu", "us-east") or cloud regions ("us-east-1",
# "europe-west4"); the server refuses others. An approximation of that list.
_REGION = re.compile(r"^(us|eu|europe|uk|ap|asia|jp|ca|sa|me|mx|af|au|australia|northamerica|southamerica)"
                     r"(-[a-z]+)?(-?[0-9]+)?$")
_ENV_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# PID 1 of every sandbox: runs the entrypoint, forwards signals to it, exits with its status
# (the part of dumb-init a provider relies on). The traps come first, so that nothing the
# entrypoint does happens before PID 1 forwards. A wait cut short by a forwarded signal returns
# 128+N, not the child's status: once the child is gone, its status is asked for again (the
# shell keeps it).
_INIT = (
    "for signal in TERM INT HUP; do trap \"kill -$signal \\$child 2>/dev/null\" $signal; done\n"
    '"$@" & child=$!\n'
    'while :; do wait "$child"; kill -0 "$child" 2>/dev/null || { wait "$child"; exit $?; }; done\n'
)
_DEFAULT_ENTRYPOINT = ["sleep", "infinity"]


def _returncode(result: dict[str, Any] | None) -> int | None:
    if result is None:
        return None
    return int({"timeout": 124, "terminated": 137}.get(result["status"], result["exitcode"]))


def _settle(record: dict[str, Any]) -> None:
    """Bring a sandbox's record up to date with its container (under the state lock): an
    entrypoint that ended, a timeout that passed, a container removed behind our back."""
    import docker

    if record["result"] is not None:
        return
    client = _core.docker_client()
    try:
        container_state = client.api.inspect_container(record["container"])["State"]
    except docker.errors.NotFound:
        record["result"] = {"status": "terminated", "exitcode": 137}
        return
    if not container_state.get("Running"):
        code = int(container_state.get("ExitCode", 0))
        record["result"] = {"status": "success" if code == 0 else "failure", "exitcode": code}
    elif time.time() >= record["created_at"] + record["timeout"]:
        record["result"] = {"status": "timeout", "exitcode": 124}
    else:
        return
    _remove_container(record)


def _settle_all(state: dict[str, dict[str, Any]]) -> None:
    for record in state["sandboxes"].values():
        _settle(record)


def _end(record: dict[str, Any], status: str) -> None:
    """Stop a running sandbox now, as ``status`` (``terminated`` or ``timeout``)."""
    _settle(record)
    if record["result"] is None:
        record["result"] = {"status": status, "exitcode": 137 if status == "terminated" else 124}
        _remove_container(record)


def _remove_container(record: dict[str, Any]) -> None:
    import docker

    # A finished sandbox's files are gone, as on Modal (and its Volumes are free again).
    with contextlib.suppress(docker.errors.NotFound):
        _core.docker_client().containers.get(record["container"]).remove(force=True)


class Sandbox:
    def __init__(self, sandbox_id: str, result: dict[str, Any] | None = None) -> None:
        self._object_id = sandbox_id
        self._result = result
        self._attached = True

    def __repr__(self) -> str:
        return f"Sandbox({self._object_id})"

    @property
    def object_id(self) -> str:
        return self._object_id

    @property
    def returncode(self) -> int | None:
        """Exit status once known (from ``poll``, ``wait``, ``terminate`` or a lookup): the
        entrypoint's, 124 after a timeout, 137 after termination; None while it runs."""
        return _returncode(self._result)

    # -- making and finding sandboxes ------------------------------------------------------------

    @staticmethod
    def create(
        *args: str,
        app: App | None = None,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        image: Image | None = None,
        env: dict[str, str | None] | None = None,
        secrets: Collection[Secret] | None = None,
        network_file_systems: dict[str | os.PathLike[str], Any] = {},  # noqa: B006 - the SDK's signature
        timeout: int | None = 300,
        idle_timeout: int | None = None,
        workdir: str | None = None,
        gpu: str | None = None,
        cloud: str | None = None,
        region: str | Sequence[str] | None = None,
        cpu: float | tuple[float, float] | None = None,
        memory: int | tuple[int, int] | None = None,
        runtime: Literal["gvisor", "vm"] | None = None,
        block_network: bool = False,
        outbound_cidr_allowlist: Sequence[str] | None = None,
        outbound_domain_allowlist: Sequence[str] | None = None,
        _experimental_outbound_policy: Any | None = None,
        inbound_cidr_allowlist: Sequence[str] | None = None,
        volumes: dict[str | os.PathLike[str], Volume] = {},  # noqa: B006 - the SDK's signature
        pty: bool = False,
        encrypted_ports: Sequence[int] = [],
        h2_ports: Sequence[int] = [],
        unencrypted_ports: Sequence[int] = [],
        custom_domain: str | None = None,
        proxy: Any | None = None,
        include_oidc_identity_token: bool = False,
        readiness_probe: Any | None = None,
        verbose: bool = False,
        experimental_options: dict[str, Any] | None = None,
        _experimental_enable_snapshot: bool = False,
        _experimental_persistent: bool = False,
        client: Any | None = None,
        environment_name: str | None = None,
        pty_info: Any | None = None,
        cidr_allowlist: Sequence[str] | None = None,
    ) -> Sandbox:
        """A new sandbox (a started container) running ``args`` (default: sleep forever)."""
        if environment_name is not None:
            warnings.warn("Passing `environment_name` to `Sandbox.create` is deprecated and will be removed in a "
                          "future release. A sandbox's environment is determined by the app it is associated "
                          "with.", DeprecationError, stacklevel=2)
        if cidr_allowlist is not None:
            if outbound_cidr_allowlist is not None:
                raise InvalidError("Cannot specify both `cidr_allowlist` and `outbound_cidr_allowlist`.")
            warnings.warn("The `cidr_allowlist` parameter has been renamed to `outbound_cidr_allowlist`. "
                          "`cidr_allowlist` will be removed in a future release.", DeprecationError, stacklevel=2)
            outbound_cidr_allowlist = cidr_allowlist
        unsupported = {
            "network_file_systems": network_file_systems, "encrypted_ports": encrypted_ports,
            "h2_ports": h2_ports, "unencrypted_ports": unencrypted_ports, "custom_domain": custom_domain,
            "proxy": proxy, "include_oidc_identity_token": include_oidc_identity_token,
            "readiness_probe": readiness_probe, "_experimental_outbound_policy": _experimental_outbound_policy,
            "_experimental_enable_snapshot": _experimental_enable_snapshot,
            "_experimental_persistent": _experimental_persistent, "pty_info": pty_info,
        }
        given = sorted(option for option, value in unsupported.items() if value)
        if given:
            raise NotImplementedError(f"modal stand-in: Sandbox.create does not support {', '.join(given)}")
        # The SDK's own checks, in its order, with its messages (V2 backend first, then common).
        if env:
            if not isinstance(env, dict):
                raise InvalidError("the env argument to Sandbox must be a dict[str, str | None]")
            for variable in env:
                if not _ENV_KEY.match(variable):
                    raise InvalidError(f"Secret key name {variable!r} is invalid for environment variables. "
                                       "Only letters, numbers, and underscores are allowed.")
        if timeout is None:
            raise InvalidError("`timeout=None` is only supported for experimental persistent Sandboxes.")
        _check_args(args)
        if name is not None:
            _core.check_object_name(name, "Sandbox")
        if workdir is not None and not workdir.startswith("/"):
            raise InvalidError(f"workdir must be an absolute path, got: {workdir}")
        if runtime is not None and runtime not in ("gvisor", "vm"):
            raise InvalidError(f"runtime must be one of ['gvisor', 'vm'], got {runtime!r}")
        if isinstance(gpu, list):
            raise InvalidError("Sandboxes do not support configuring a list of GPUs. "
                               "Specify a single GPU configuration, e.g. gpu='a10g'")
        if block_network and outbound_cidr_allowlist is not None:
            raise InvalidError("`outbound_cidr_allowlist` cannot be used when `block_network` is enabled")
        if block_network and outbound_domain_allowlist is not None:
            raise InvalidError("`outbound_domain_allowlist` cannot be used when `block_network` is enabled")
        if block_network and inbound_cidr_allowlist is not None:
            raise InvalidError("`inbound_cidr_allowlist` cannot be used when `block_network` is enabled")
        if app is None:
            raise InvalidError(
                "Sandboxes require an App when created outside of a Modal container.\n\n"
                "Run an ephemeral App (`with app.run(): ...`), or reference a deployed App using `App.lookup`:\n\n"
                "```\n"
                'app = modal.App.lookup("sandbox-app", create_if_missing=True)\n'
                "sb = modal.Sandbox.create(..., app=app)\n"
                "```",
            )
        if app.app_id is None:
            raise ValueError("App has not been initialized yet. To create an App lazily, use `App.lookup`: \n"
                             "app = modal.App.lookup('my-app', create_if_missing=True)\n"
                             "modal.Sandbox.create('echo', 'hi', app=app)")
        _core.check_credentials()
        if "create-offline" in _core.faults():
            raise ConnectionError("Could not connect to the Modal server.")
        # What Modal's server would refuse (messages unverified: no server here).
        cpu_limit, cpu_request = _cpu(cpu)
        memory_limit, memory_request = _memory(memory)
        _check_gpu(gpu)
        for place in [region] if isinstance(region, str) else list(region or []):
            if not _REGION.match(place):
                raise InvalidError(f"Unknown region: {place!r}")
        if not 0 < timeout <= MAX_TIMEOUT:
            raise InvalidError(f"Sandbox timeout must be between 1 and {MAX_TIMEOUT} seconds, got {timeout}")

        chosen = image or Image.debian_slim()  # the SDK's default image
        docker_image = chosen._docker_image()
        environment: dict[str, str] = {}
        mounts: dict[str, dict[str, str]] = {}
        with _core.state() as state:
            for secret in secrets or []:
                environment.update(secret._resolve(state))
            environment.update({variable: value for variable, value in (env or {}).items() if value is not None})
            for path, volume in volumes.items():
                mounts[volume._record(state)["docker_volume"]] = {"bind": os.fspath(path), "mode": "rw"}
            _settle_all(state)
            if name is not None and any(record["name"] == name and record["app_id"] == app.app_id
                                        and record["result"] is None for record in state["sandboxes"].values()):
                raise AlreadyExistsError(f"Sandbox with name {name!r} already exists in the App")
            sandbox_id = _core.new_id("sb")
            options: dict[str, Any] = {
                "labels": _core.labels(**{_core.SANDBOX_LABEL: sandbox_id}), "environment": environment,
                "working_dir": workdir, "volumes": mounts, "detach": True,
                "name": f"modal-standin-{_core.key()}-{sandbox_id}",
            }
            if block_network:
                options["network_mode"] = "none"
            if cpu_request:
                options["cpu_shares"] = max(2, int(cpu_request * 1024))  # a request weighs, a limit caps
            if cpu_limit:
                options["nano_cpus"] = int(cpu_limit * 1e9)
            if memory_request:
                options["mem_reservation"] = f"{memory_request}m"
            if memory_limit:
                options["mem_limit"] = f"{memory_limit}m"
            container = _core.docker_client().containers.run(
                docker_image, ["/bin/sh", "-c", _INIT, "modal-init", *(args or _DEFAULT_ENTRYPOINT)], **options)
            # Recorded in the same locked block, so no process sees a container without its record.
            state["sandboxes"][sandbox_id] = {
                "id": sandbox_id, "container": container.id, "app_id": app.app_id, "name": name,
                "tags": dict(tags or {}), "created_at": time.time(), "timeout": timeout, "result": None,
                "docker_volumes": sorted(mounts), "image": docker_image,
                "options": {  # what Modal was asked for, for tests to check (JSON)
                    "args": list(args), "image_id": chosen.object_id, "gpu": gpu,
                    "region": region if isinstance(region, str) or region is None else list(region),
                    "cloud": cloud, "cpu": cpu, "memory": memory, "runtime": runtime, "idle_timeout": idle_timeout,
                    "block_network": block_network,
                    "outbound_cidr_allowlist": None if outbound_cidr_allowlist is None else list(outbound_cidr_allowlist),
                    "outbound_domain_allowlist": (None if outbound_domain_allowlist is None
                                                  else list(outbound_domain_allowlist)),
                    "inbound_cidr_allowlist": None if inbound_cidr_allowlist is None else list(inbound_cidr_allowlist),
                    "pty": pty, "workdir": workdir, "env": sorted(environment),
                    "volumes": {os.fspath(path): volume.name for path, volume in volumes.items()},
                    "experimental_options": experimental_options,
                },
            }
        if "create-lost-then-offline" in _core.faults():
            # Made, then the network went: no reply, and nothing reaches Modal until it is back.
            _core.add_fault("offline")
            raise ConnectionError("Could not connect to the Modal server.")
        if "create-lost" in _core.faults():
            # Made, and then the reply never came: the caller has no handle to it.
            raise ConnectionError("Could not connect to the Modal server.")
        return Sandbox(sandbox_id)

    @staticmethod
    def from_id(sandbox_id: str, client: Any | None = None) -> Sandbox:
        """A handle to a sandbox, running or finished (its result filled in)."""
        _core.check_credentials()
        with _core.state() as state:
            record = state["sandboxes"].get(sandbox_id)
            if record is None:
                raise NotFoundError(f"Sandbox {sandbox_id!r} not found")
            _settle(record)
            return Sandbox(sandbox_id, record["result"])

    @staticmethod
    def from_name(
        app_name: str,
        name: str,
        *,
        environment_name: str | None = None,
        include_terminated: bool = False,
        client: Any | None = None,
    ) -> Sandbox:
        """The running sandbox called ``name`` in the App; with ``include_terminated``, the most
        recent finished one when none runs."""
        _core.check_credentials()
        env = _core.environment(environment_name)
        with _core.state() as state:
            app = state["apps"].get(f"{env}/{app_name}")
            if app is None:
                raise NotFoundError(f"App {app_name!r} not found in environment {env!r}")
            _settle_all(state)
            named = sorted((record for record in state["sandboxes"].values()
                            if record["app_id"] == app["app_id"] and record["name"] == name),
                           key=lambda record: record["created_at"], reverse=True)
            for record in named:
                if record["result"] is None or include_terminated:
                    return Sandbox(record["id"], record["result"])
        raise NotFoundError(f"Sandbox {name!r} not found in App {app_name!r}")

    @staticmethod
    def list(
        *, app_id: str | None = None, tags: dict[str, str] | None = None, client: Any | None = None
    ) -> Iterator[Sandbox]:
        """The running sandboxes (of ``app_id``, with at least ``tags``), newest first."""
        if not app_id:
            # What SDK 1.6 says (it lists through the V2 backend by default), as a warning on stderr.
            warnings.warn("Listing Sandboxes without an `app_id` scans the entire Environment, which is "
                          "deprecated. Pass an `app_id` to scope the query:\n\n"
                          'app = modal.App.lookup("my-app")\nmodal.Sandbox.list(app_id=app.app_id)',
                          DeprecationError, stacklevel=2)
        _core.check_credentials()
        with _core.state() as state:
            _settle_all(state)
            found = [record for record in state["sandboxes"].values()
                     if record["result"] is None and (not app_id or record["app_id"] == app_id)
                     and all(record["tags"].get(tag) == value for tag, value in (tags or {}).items())]
        found.sort(key=lambda record: record["created_at"], reverse=True)
        return iter([Sandbox(record["id"]) for record in found])

    # -- tags ---------------------------------------------------------------------------------------

    def get_tags(self) -> dict[str, str]:
        self._ensure_attached()
        with self._record() as record:
            return dict(record["tags"])

    def set_tags(self, tags: dict[str, str], *, client: Any | None = None) -> None:
        """Replace all its tags (an empty dict clears them)."""
        self._ensure_attached()
        if client is not None:
            warnings.warn("The `client` parameter is deprecated. Set `client` when creating the Sandbox instead "
                          "(in e.g. `Sandbox.create()`/`.from_id()`/`.from_name()`).", DeprecationError, stacklevel=2)
        with self._record() as record:
            record["tags"] = dict(tags)

    # -- its life -------------------------------------------------------------------------------------

    def poll(self) -> int | None:
        """None while it runs, else its exit status."""
        self._ensure_attached()
        with self._record() as record:
            self._result = record["result"]
        return self.returncode

    def wait(self, raise_on_termination: bool = True) -> None:
        """Until it finishes; SandboxTimeoutError after a timeout, SandboxTerminatedError after
        a termination (unless ``raise_on_termination`` is False)."""
        while True:
            with self._record() as record:
                self._result = record["result"]
            if self._result is not None:
                break
            time.sleep(0.2)
        if self._result["status"] == "timeout":
            raise SandboxTimeoutError()
        if self._result["status"] == "terminated" and raise_on_termination:
            raise SandboxTerminatedError()

    def terminate(self, *, wait: bool = False) -> int | None:
        """End it now (a no-op if it already finished); with ``wait``, its exit status."""
        self._ensure_attached()
        with self._record() as record:
            _end(record, "terminated")
            self._result = record["result"]
        return self.returncode if wait else None

    def detach(self) -> None:
        """Let go of the handle; the sandbox runs on (use ``from_id`` to reach it again)."""
        self._attached = False

    # -- its files --------------------------------------------------------------------------------------

    def snapshot_filesystem(self, timeout: int = 55, *, ttl: int | None = 30 * 24 * 3600) -> Image:
        """``docker commit`` of the running container as a new Image (Volumes not included)."""
        self._ensure_attached()
        if ttl is not None and ttl <= 0:
            raise InvalidError("ttl must be positive, or None to disable expiry")
        with self._record() as record:
            if record["result"] is not None:
                raise ConflictError("Sandbox already finished")
            client = _core.docker_client()
            container = client.containers.get(record["container"])
            image_id = _core.new_id("im")
            # Docker keeps the variables given to create() in the committed image (it merges a
            # commit's config into the container's); Modal's snapshot is of files: unknown there.
            committed = container.commit(repository=SNAPSHOT_REPOSITORY, tag=image_id.lower(),
                                         conf={"Labels": _core.labels()})
        with _core.state() as state:
            state["images"][image_id] = {"docker_image": committed.id, "created_at": time.time(), "ttl": ttl,
                                         "source": "snapshot", "sandbox": self._object_id}
        return Image(("id",), f"Image.from_id({image_id!r})", object_id=image_id)

    # -- commands ----------------------------------------------------------------------------------------

    def exec(
        self,
        *args: str,
        stdout: StreamType = StreamType.PIPE,
        stderr: StreamType = StreamType.PIPE,
        timeout: int | None = None,
        workdir: str | None = None,
        env: dict[str, str | None] | None = None,
        secrets: Collection[Secret] | None = None,
        text: bool = True,
        bufsize: Literal[-1, 1] = -1,
        pty: bool = False,
        _pty_info: Any | None = None,
        pty_info: Any | None = None,
    ) -> ContainerProcess[Any]:
        """Run ``args`` in it; stdin, stdout and stderr are streams (bytes with ``text=False``).

        With ``pty`` the command gets a terminal of this terminal's size (fixed at start, as
        in the SDK) and its stdout carries everything it prints; stderr stays empty.
        """
        if _pty_info is not None or pty_info is not None:
            raise NotImplementedError("modal stand-in: exec takes `pty`, not the deprecated pty_info")
        self._ensure_attached()
        if workdir is not None and not workdir.startswith("/"):
            raise InvalidError(f"workdir must be an absolute path, got: {workdir}")
        _check_args(args)
        _core.check_credentials()
        environment: dict[str, str] = {}
        with self._record() as record:
            if record["result"] is not None:
                raise ConflictError("Sandbox already finished")
            container = record["container"]
        if secrets:
            with _core.state() as state:
                for secret in secrets:
                    environment.update(secret._resolve(state))
        environment.update({variable: value for variable, value in (env or {}).items() if value is not None})
        if pty:
            environment.setdefault("TERM", os.environ.get("TERM") or "xterm")
        argv = ["docker", "exec", "-i", *(["-t"] if pty else []), *(["-w", workdir] if workdir else [])]
        for variable, value in environment.items():
            argv += ["-e", f"{variable}={value}"]
        argv += [container, *args]
        deadline = time.monotonic() + timeout if timeout else None
        by_line = bufsize == 1
        if pty:
            return _exec_in_terminal(argv, text, by_line, deadline)
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe() if stdout == StreamType.PIPE else (None, None)
        stderr_read, stderr_write = os.pipe() if stderr == StreamType.PIPE else (None, None)
        try:
            # Its own session: a Ctrl-C meant for the caller is not the command's.
            process = subprocess.Popen(argv, stdin=stdin_read, stdout=_target(stdout, stdout_write),
                                       stderr=_target(stderr, stderr_write), start_new_session=True)
        finally:
            for fd in (stdin_read, stdout_write, stderr_write):
                if fd is not None:
                    os.close(fd)
        return ContainerProcess(process, StreamReader(stdout_read, 1, stdout, text, by_line),
                                StreamReader(stderr_read, 2, stderr, text, by_line), StreamWriter(stdin_write),
                                deadline)

    # -- internals ------------------------------------------------------------------------------------

    def _ensure_attached(self) -> None:
        if not self._attached:
            raise ClientClosed("Unable to perform operation on a detached sandbox")

    @contextlib.contextmanager
    def _record(self) -> Iterator[dict[str, Any]]:
        """Its record, settled, with the state locked for the block."""
        with _core.state() as state:
            record = state["sandboxes"].get(self._object_id)
            if record is None:
                raise NotFoundError(f"Sandbox {self._object_id!r} not found")
            _settle(record)
            yield record


def _check_args(args: Sequence[str]) -> None:
    if not all(isinstance(arg, str) for arg in args):
        raise InvalidError("All entrypoint arguments must be strings")
    total = sum(len(arg) for arg in args)
    if total > ARG_MAX_BYTES:
        raise InvalidError(f"Total length of CMD arguments cannot exceed {ARG_MAX_BYTES} bytes (ARG_MAX). "
                           f"Got {total} bytes.")


def _check_gpu(gpu: Any) -> None:
    if gpu is None:
        return
    if not isinstance(gpu, str):
        raise InvalidError(f"Invalid GPU config: {gpu!r}. Value must be a string or `None`")
    kind, _, count = gpu.partition(":")
    if count:
        try:
            int(count)
        except ValueError:
            raise InvalidError(f"Invalid GPU count: {count}. Value must be an integer.") from None
    if kind.upper() not in GPU_TYPES:
        raise InvalidError(f"Unknown GPU type: {kind!r}")


def _cpu(cpu: float | tuple[float, float] | None) -> tuple[float, float]:
    """(limit, request) in cores, checked as the SDK checks them."""
    if isinstance(cpu, tuple):
        if not cpu[0]:
            raise InvalidError("CPU request must be a positive number")
        if not cpu[1]:
            raise InvalidError("CPU limit must be a positive number")
        if int(1000 * cpu[1]) < int(1000 * cpu[0]):
            raise InvalidError(f"Cannot specify a CPU limit lower than request: {int(1000 * cpu[1])} < "
                               f"{int(1000 * cpu[0])}")
        return cpu[1], cpu[0]
    return 0.0, float(cpu or 0)


def _memory(memory: int | tuple[int, int] | None) -> tuple[int, int]:
    """(limit, request) in MiB, checked as the SDK checks them."""
    if isinstance(memory, tuple):
        if memory[1] < memory[0]:
            raise InvalidError(f"Cannot specify a memory limit lower than request: {memory[1]} < {memory[0]}")
        return memory[1], memory[0]
    return 0, int(memory or 0)


def _target(stream_type: StreamType, pipe_end: int | None) -> int | None:
    if stream_type == StreamType.PIPE:
        return pipe_end
    if stream_type == StreamType.DEVNULL:
        return subprocess.DEVNULL
    return None  # StreamType.STDOUT: printed where this process prints, as the SDK does


def _exec_in_terminal(argv: list[str], text: bool, by_line: bool, deadline: float | None) -> ContainerProcess[Any]:
    """``docker exec -it`` with a pseudo-terminal of our own as its terminal: its master side
    carries the command's output (stdout) and takes its input (stdin)."""
    import fcntl
    import pty as ptys
    import struct
    import termios

    master, slave = ptys.openpty()
    with contextlib.suppress(OSError, ValueError):
        rows, columns = struct.unpack("hh", fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, b"\0" * 4))
        if rows and columns:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("hhhh", rows, columns, 0, 0))
    try:
        process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    return ContainerProcess(process, StreamReader(master, 1, StreamType.PIPE, text, by_line),
                            StreamReader(None, 2, StreamType.PIPE, text, by_line), StreamWriter(os.dup(master)),
                            deadline)
