"""A handle on one host: typed agent operations over that host's helper channel."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from mngr.providers.base import AgentEnvironment, OfflineListing, Provider, WarmPath

from . import verbosity
from .channel import protocol
from .channel.rpc import RpcClient
from .errors import ChannelClosed, ChannelError, HelperUnresponsive, ProtocolViolation

ReplyT = TypeVar("ReplyT")
# Requests that change nothing, so repeating one after a failed first try is harmless.
_SAFE_TO_REPEAT = (
    protocol.Ping, protocol.GetHelperInfo, protocol.ListAgents, protocol.FindAgent, protocol.CapturePane, protocol.ReadOutput,
    protocol.ProbePorts,
)

# A busy sshd (MaxStartups) drops handshakes at random while many are in progress; with
# 50 hosts behind one sshd on a loaded machine, four tries were seen to lose one.
_CONNECT_ATTEMPTS = 6
# The helper's own wait for a message to show in the agent's session log, and some to spare.
_CONFIRM_ALLOWANCE = 20.0
# How long a warm helper (a host daemon) may take to answer a Ping before it counts as hung
# and a fresh helper is used instead. A daemon answers Pings on its reading thread, at once.
WARM_PROBE_SECONDS = 2.0


class HostHandle:
    """Opens the channel on first use and keeps it for the rest of the command."""

    def __init__(self, provider: Provider, host: str, timeout: float | None = None) -> None:
        self.provider = provider
        self.provider_name = provider.name
        self.host = host
        self.timeout = timeout
        self._client: RpcClient | None = None
        self._warm_allowed = True
        # A warm stream nobody has had an answer on yet: the far end may have nothing there.
        self._unproven = False
        # Several agents of one host may be acted on at once (fanout.py): one opens
        # the channel, the others wait for it and share it.
        self._connecting = threading.Lock()
        # The socket of a stream that has not answered yet: once it has, where this host is
        # reached, for the next push or pull to connect to early (early_channel.py).
        self._socket_to_remember = ""
        self._seconds_spent = 0.0  # -v: the time this host took, said when it is closed
        self._requests = 0

    @property
    def client(self) -> RpcClient:
        client = self._client
        if client is not None:
            return client
        with self._connecting:
            return self._open()

    def _open(self) -> RpcClient:
        attempt = 0
        while self._client is None:
            attempt += 1
            started = time.monotonic()
            stream = self.provider.open_stream(self.host, warm=self._warm_allowed)
            if verbosity.verbose():
                verbosity.trace(f"{self._who()}: open channel: {_described(stream)}")
            try:
                if stream.needs_bootstrap:
                    with verbosity.timed(f"{self._who()}: bootstrap helper"):
                        self._client = RpcClient.bootstrap(stream, self.timeout)
                    if isinstance(self.provider, WarmPath):
                        self.provider.bootstrapped(self.host, self._client)
                else:
                    self._client = RpcClient(stream)
                    self._unproven = not stream.proven
                    self._socket_to_remember = getattr(stream, "path", "")
            except ChannelError:
                stream.close()
                if attempt >= _CONNECT_ATTEMPTS or not stream.worth_retrying():
                    raise
                import random

                time.sleep(random.uniform(0.1, 0.4) * attempt)
            except BaseException:
                stream.close()
                raise
            finally:
                self._seconds_spent += time.monotonic() - started
        return self._client

    def connect(self) -> None:
        """Open the channel now (bootstrapping if need be) rather than at the first request."""
        _ = self.client

    def _call(self, request: msgspec.Struct, expect: type[ReplyT], timeout: float | None = None) -> ReplyT:
        reply, _ = self._call_with_blob(request, expect, timeout=timeout)
        return reply

    def _call_with_blob(
        self, request: msgspec.Struct, expect: type[ReplyT], blob: bytes = b"", timeout: float | None = None
    ) -> tuple[ReplyT, bytes]:
        result = self._answer(request, expect, blob, timeout)
        if self._socket_to_remember:
            from .early_channel import remember

            path, self._socket_to_remember = self._socket_to_remember, ""
            remember(self.provider_name, self.host, path)
        return result

    def _answer(
        self, request: msgspec.Struct, expect: type[ReplyT], blob: bytes = b"", timeout: float | None = None
    ) -> tuple[ReplyT, bytes]:
        if not verbosity.verbose():
            return self._answer_now(request, expect, blob, timeout)
        _ = self.client  # its opening is timed on its own
        self._requests += 1
        started = time.monotonic()
        what = f"{self._who()}: {type(request).__name__}" + (f" sending {len(blob)} bytes" if blob else "")
        try:
            with verbosity.timed(what):
                return self._answer_now(request, expect, blob, timeout)
        finally:
            self._seconds_spent += time.monotonic() - started

    def _who(self) -> str:
        return f"{self.provider_name} {self.host}"

    def _answer_now(
        self, request: msgspec.Struct, expect: type[ReplyT], blob: bytes = b"", timeout: float | None = None
    ) -> tuple[ReplyT, bytes]:
        client = self.client
        if self._unproven:
            # Only a request that may run twice goes out before the far end has answered.
            probe = WARM_PROBE_SECONDS if self.timeout is None else min(self.timeout, WARM_PROBE_SECONDS)
            try:
                if isinstance(request, _SAFE_TO_REPEAT):
                    result = client.call_with_blob(request, expect, blob, timeout, probe=probe)
                    self._unproven = False
                    return result
                client.call(protocol.Ping(), protocol.Pong, timeout=probe)
            except (ChannelClosed, ProtocolViolation, HelperUnresponsive):
                # The forwarded socket led nowhere (no daemon there any more), or to a daemon
                # that hangs: a fresh helper, which replaces a hung daemon (daemon_launch.py).
                self.close()
                self._warm_allowed = False
                self._unproven = False
                return self.client.call_with_blob(request, expect, blob, timeout)
            self._unproven = False
        return client.call_with_blob(request, expect, blob, timeout)

    def close(self) -> None:
        self._socket_to_remember = ""
        if self._client is not None:
            self._client.close()
            self._client = None
            if verbosity.verbose():
                verbosity.trace(f"{self._who()}: {self._requests} request(s), {self._seconds_spent:.3f} s on this host")

    def __enter__(self) -> HostHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def helper_info(self) -> protocol.HelperInfo:
        return self._call(protocol.GetHelperInfo(), protocol.HelperInfo, timeout=self.timeout)

    def list_agents(self, quiet_seconds: float) -> list[protocol.AgentInfo]:
        return self.list_host(quiet_seconds).agents

    def list_host(self, quiet_seconds: float) -> protocol.AgentList:
        """The host's agents and its idle status, in one request (or, for a host that is
        not running, what its provider can tell without starting it)."""
        if isinstance(self.provider, OfflineListing):
            offline = self.provider.offline_listing(self.host)
            if offline is not None:
                return offline
        return self._call(protocol.ListAgents(quiet_seconds), protocol.AgentList, timeout=self.timeout)

    def find_agent(self, name: str) -> protocol.AgentList:
        """The agents recorded on the host as ``name``, without their state (FindAgent);
        for a host that is not running, what its provider can tell without starting it."""
        if isinstance(self.provider, OfflineListing):
            offline = self.provider.offline_listing(self.host)
            if offline is not None:
                return protocol.AgentList([agent for agent in offline.agents if agent.name == name], offline.host)
        return self._call(protocol.FindAgent(name=name), protocol.AgentList, timeout=self.timeout)

    def set_idle_settings(self, request: protocol.SetIdleSettings) -> protocol.IdleSettings:
        return self._call(request, protocol.IdleSettings, timeout=self.timeout)

    def keep_alive(self, name: str, seconds: float) -> None:
        self._call(protocol.KeepAlive(name=name, seconds=seconds), protocol.Done, timeout=self.timeout)

    def listening_ports(self, ports: list[int]) -> list[int]:
        """The ports of ``ports`` something listens on, on the host's loopback."""
        return self._call(protocol.ProbePorts(ports=ports), protocol.PortsOpen, timeout=self.timeout).listening

    def watcher_log(self, tail_lines: int) -> bytes:
        _, text = self._call_with_blob(protocol.ReadWatcherLog(tail_lines=tail_lines), protocol.Captured,
                                       timeout=self.timeout)
        return text

    def create_agent(
        self,
        *,
        name: str,
        agent_type: str,
        command: str,
        binary: str | None,
        work_dir: str,
        env: Mapping[str, str],
        labels: Mapping[str, str],
        interaction: dict[str, Any] | None = None,
        path_dirs: list[str] | None = None,
        agent_config: dict[str, Any] | None = None,
        work_dir_origin: dict[str, str] | None = None,
        extra_windows: Mapping[str, str] | None = None,
        urls: Mapping[str, str] | None = None,
        uploads: list[list[Any]] | None = None,
        upload_bytes: bytes = b"",
        overwrite_uploads: bool = False,
    ) -> protocol.AgentInfo:
        request = protocol.CreateAgent(
            name=name,
            agent_type=agent_type,
            command=command,
            binary=binary,
            work_dir=work_dir,
            env=dict(env),
            labels=dict(labels),
            base_env=self._base_env(),
            umask=self._umask(),
            interaction=interaction,
            path_dirs=list(path_dirs or []),
            agent_config=agent_config,
            work_dir_origin=work_dir_origin,
            extra_windows=dict(extra_windows or {}),
            urls=dict(urls or {}),
            uploads=list(uploads or []),
            overwrite_uploads=overwrite_uploads,
        )
        reply, _ = self._call_with_blob(request, protocol.AgentReply, upload_bytes, timeout=self.timeout)
        created = reply.agent
        from . import host_registry

        host_registry.seen(self.provider_name, self.host)  # a dropped host is back
        return created

    def ensure_cli(self, request: protocol.EnsureCli) -> protocol.CliPlace:
        return self._call(request, protocol.CliPlace, timeout=self.timeout)

    def put_cli_part(self, request: protocol.PutCliPart, blob: bytes) -> protocol.CliPartStored:
        reply, _ = self._call_with_blob(request, protocol.CliPartStored, blob, timeout=self.timeout)
        return reply

    def finish_cli(self, request: protocol.FinishCli) -> None:
        self._call(request, protocol.Done, timeout=self.timeout)

    def write_agent_config(self, name: str, agent_config: dict[str, Any] | None,
                           path_dirs: list[str] | None = None) -> None:
        """Write agent ``name``'s own CLI config dir again (controller/agent_config.py) and/or
        the dirs first on its PATH (controller/cli_supply.py); None leaves either as it is."""
        self._call(protocol.WriteAgentConfig(name=name, agent_config=agent_config, path_dirs=path_dirs),
                   protocol.Done, timeout=self.timeout)

    def read_agent_config(self, name: str, salt: str) -> protocol.AgentConfigState:
        """What agent ``name``'s own CLI config dir holds, as hashes salted with ``salt``."""
        return self._call(protocol.ReadAgentConfig(name=name, salt=salt), protocol.AgentConfigState,
                          timeout=self.timeout)

    def stop_agent(self, name: str, grace: float = 2.0) -> protocol.AgentInfo:
        # The grace and the SIGKILL wait after it come on top of the host's timeout.
        return self._call(protocol.StopAgent(name, grace), protocol.AgentReply, timeout=self._plus(grace)).agent

    def rename_agent(self, name: str, new_name: str) -> protocol.AgentInfo:
        request = protocol.RenameAgent(name=name, new_name=new_name)
        return self._call(request, protocol.AgentReply, timeout=self.timeout).agent

    def set_labels(self, name: str, add: dict[str, str], remove: list[str]) -> protocol.AgentInfo:
        request = protocol.SetLabels(name=name, add=add, remove=remove)
        return self._call(request, protocol.AgentReply, timeout=self.timeout).agent

    def set_archived(self, name: str, archived: bool, grace: float = 2.0) -> protocol.AgentInfo:
        """Archive (stopping it first, as stop_agent) or unarchive agent ``name``."""
        request = protocol.SetArchived(name=name, archived=archived, grace=grace)
        return self._call(request, protocol.AgentReply, timeout=self._plus(grace)).agent

    def start_agent(self, name: str) -> protocol.AgentInfo:
        request = protocol.StartAgent(name, base_env=self._base_env(), umask=self._umask())
        return self._call(request, protocol.AgentReply, timeout=self.timeout).agent

    def agents_get_users_environment(self) -> bool:
        """Whether agents here start from the user's own environment (and so see the user's
        own CLI config), as on the local host."""
        return self._base_env() is not None

    def _base_env(self) -> dict[str, str] | None:
        """The environment agents start from: the provider's choice, or (None) the helper's."""
        if isinstance(self.provider, AgentEnvironment):
            return self.provider.agent_base_env(self.host)
        return None

    def _umask(self) -> int | None:
        if isinstance(self.provider, AgentEnvironment):
            return self.provider.agent_umask(self.host)
        return None

    def _plus(self, seconds: float) -> float | None:
        """The host's timeout with ``seconds`` more (None: no timeout stays none)."""
        return None if self.timeout is None else self.timeout + seconds

    def destroy_agent(self, name: str, keep_work_dir: bool = False, grace: float = 2.0) -> None:
        request = protocol.DestroyAgent(name=name, keep_work_dir=keep_work_dir, grace=grace)
        self._call(request, protocol.Done, timeout=self._plus(grace))

    def send_message(
        self,
        name: str,
        text: str,
        *,
        wait_ready: bool = False,
        ready_pattern: str | None = None,
        ready_quiet_seconds: float = 1.0,
        ready_timeout: float = 60.0,
    ) -> None:
        request = protocol.SendMessage(
            name=name,
            text=text,
            wait_ready=wait_ready,
            ready_pattern=ready_pattern,
            ready_quiet_seconds=ready_quiet_seconds,
            ready_timeout=ready_timeout,
        )
        # An agent that tells when it takes input is waited for, and its taking the message
        # confirmed (up to CONFIRM_SECONDS on the host), whether or not it was just started.
        timeout = None if self.timeout is None else self.timeout + ready_timeout + _CONFIRM_ALLOWANCE
        self._call(request, protocol.Done, timeout=timeout)

    def await_input(self, name: str, timeout: float) -> None:
        call_timeout = None if self.timeout is None else self.timeout + timeout
        self._call(protocol.AwaitInput(name=name, timeout=timeout), protocol.Done, timeout=call_timeout)

    def capture(self, name: str, full: bool = False) -> bytes:
        _, screen = self._call_with_blob(
            protocol.CapturePane(name=name, full=full), protocol.Captured, timeout=self.timeout
        )
        return screen

    def read_output(
        self, name: str, *, source: str = "output", offset: int | None = None, tail_lines: int = 0
    ) -> tuple[protocol.OutputChunk, bytes]:
        request = protocol.ReadOutput(name=name, source=source, offset=offset, tail_lines=tail_lines)
        return self._call_with_blob(request, protocol.OutputChunk, timeout=self.timeout)

    def note_activity(self, name: str, source: str) -> None:
        self._call(protocol.NoteActivity(name=name, source=source), protocol.Done, timeout=self.timeout)

    def get_manifest(self, name: str, include_ignored: bool, work_dir: str = "",
                     with_uncommitted: bool = False, known: str = "") -> tuple[protocol.Manifest, bytes]:
        request = protocol.GetManifest(name=name, include_ignored=include_ignored, work_dir=work_dir,
                                       with_uncommitted=with_uncommitted, known=known)
        return self._call_with_blob(request, protocol.Manifest, timeout=self.timeout)

    def prepare_work_dir(self, name: str, path: str, bundle: bytes = b"", remove: bool = False,
                         branch: str = "", new_branch: str = "", clone_url: str = "") -> str:
        request = protocol.PrepareWorkDir(name=name, path=path, remove=remove, branch=branch, new_branch=new_branch,
                                          clone_url=clone_url)
        reply, _ = self._call_with_blob(request, protocol.WorkDir, bundle, timeout=self.timeout)
        return reply.path

    def write_files(self, request: protocol.WriteFiles, blob: bytes) -> protocol.Written:
        """Carry out ``request``: the work dir's new manifest tag and what was skipped."""
        # The timeout is about progress (see RpcClient): a slow link that moves is fine.
        reply, _ = self._call_with_blob(request, protocol.Written, blob, timeout=self.timeout)
        return reply

    def signatures(self, name: str, path: str, work_dir: str = "") -> tuple[protocol.Signatures, bytes]:
        """The signatures of the host's file at ``path`` for a delta push (block 0: none)."""
        return self._call_with_blob(protocol.GetSignatures(name=name, path=path, work_dir=work_dir),
                                    protocol.Signatures, timeout=self.timeout)

    def write_delta(self, request: protocol.WriteDelta, blob: bytes) -> protocol.Written:
        reply, _ = self._call_with_blob(request, protocol.Written, blob, timeout=self.timeout)
        return reply

    def read_delta(self, request: protocol.ReadDelta, records: bytes) -> tuple[protocol.DeltaData, bytes]:
        return self._call_with_blob(request, protocol.DeltaData, records, timeout=self.timeout)

    def wire_bytes(self) -> tuple[int, int]:
        """(sent, received): the bytes this handle's channel carried so far."""
        if self._client is None:
            return 0, 0
        return self._client.bytes_sent, self._client.bytes_received

    def bytes_moving(self) -> tuple[int, int]:
        """(sent, read): like wire_bytes, but counted as the bytes cross, before a reply is
        whole: for a progress line."""
        if self._client is None:
            return 0, 0
        return self._client.bytes_sent, self._client.bytes_arrived

    def agent_spec(self, name: str) -> protocol.AgentSpec:
        return self._call(protocol.GetAgentSpec(name=name), protocol.AgentSpec, timeout=self.timeout)

    def work_state(self, name: str) -> protocol.WorkState:
        return self._call(protocol.GetWorkState(name=name), protocol.WorkState, timeout=self.timeout)

    def git_bundle(self, name: str) -> bytes:
        _, bundle = self._call_with_blob(protocol.GetGitBundle(name=name), protocol.Captured, timeout=self.timeout)
        return bundle

    def read_files(self, name: str, paths: list[str], offset: int = 0,
                   length: int = 0, compress: bool = True) -> tuple[protocol.FileData, bytes]:
        """The files ``paths`` (with a ``length``: that part of the one file); a reply holds
        at most a batch or a part, so the usual timeout is about progress, not size."""
        request = protocol.ReadFiles(name=name, paths=paths, offset=offset, length=length, compress=compress)
        return self._call_with_blob(request, protocol.FileData, timeout=self.timeout)

    def watch_changes(self, name: str, cursor: str, wait: float) -> tuple[protocol.Changes, bytes]:
        """What changed in the work dir after ``cursor`` (see protocol.WatchChanges)."""
        timeout = None if self.timeout is None else self.timeout + wait
        return self._call_with_blob(protocol.WatchChanges(name=name, cursor=cursor, wait=wait), protocol.Changes,
                                    timeout=timeout)

    def read_events(self, cursor: str, since: str, wait: float, quiet_seconds: float) -> protocol.Events:
        """The host's events after ``cursor`` (see protocol.ReadEvents), waiting up to
        ``wait`` seconds for one."""
        timeout = None if self.timeout is None else self.timeout + wait
        request = protocol.ReadEvents(cursor=cursor, since=since, wait=wait, quiet_seconds=quiet_seconds)
        return self._call(request, protocol.Events, timeout=timeout)

    def stat_paths(self, name: str, paths: list[str]) -> tuple[protocol.Changes, bytes]:
        """What ``paths`` of the work dir are now (see protocol.StatPaths)."""
        return self._call_with_blob(protocol.StatPaths(name=name, paths=paths), protocol.Changes,
                                    timeout=self.timeout)

    def exec_start(self, name: str, command: str) -> int:
        request = protocol.ExecStart(name=name, command=command)
        return self._call(request, protocol.ExecStarted, timeout=self.timeout).exec_id

    def exec_read(self, exec_id: int, wait: float) -> tuple[bytes, bytes, int | None]:
        """Output since the last read (stdout, stderr) and the exit code once it has ended."""
        timeout = None if self.timeout is None else self.timeout + wait
        reply, blob = self._call_with_blob(
            protocol.ExecRead(exec_id=exec_id, wait=wait), protocol.ExecOutput, timeout=timeout
        )
        return blob[: reply.stdout_length], blob[reply.stdout_length :], reply.exit_code

    def collect_garbage(self, dry_run: bool, min_age: float) -> list[tuple[str, str]]:
        """What interrupted operations left on the host: (kind, path or session) each;
        removed unless ``dry_run``."""
        reply = self._call(protocol.CollectGarbage(dry_run=dry_run, min_age=min_age), protocol.Garbage,
                           timeout=self.timeout)
        return [(str(item[0]), str(item[1])) for item in reply.found if len(item) == 2]

    def exec_kill(self, exec_id: int) -> None:
        self._call(protocol.ExecKill(exec_id=exec_id), protocol.Done, timeout=self.timeout)


def _described(stream: object) -> str:
    """How a channel reaches its host, as -v shows it: the command run, or the socket."""
    argv = getattr(stream, "argv", None)
    if argv:
        import shlex

        # the first stage's inline script is a kilobyte of base64: its size says enough
        return " ".join(shlex.quote(str(word)) if len(str(word)) <= 120 else f"<{len(str(word))}-character script>"
                        for word in argv)
    path = getattr(stream, "path", "")
    return f"socket {path}" if path else type(stream).__name__
