"""The local provider: the user's own machine, as one host named ``local``.

The helper runs as a plain child process started with the same first stage every remote
host gets, so the local host exercises exactly the path remote hosts use. When the host
daemon that helper starts is listening, later commands reach it over its unix socket
instead (the warm path); if that fails for any reason they bootstrap again.

Agents on the local host start from the environment of the ``mngr`` command that creates
or starts them, as any program you start from your shell would.

Settings (``[providers.local]`` in config):

``python``  interpreter that runs the helper (default: the one running mngr; it is
            certainly present, and starting it skips a ``python3`` lookup on PATH)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from mngr.controller.channel.bootstrap import daemon_socket_path, stage1_argv
from mngr.controller.channel.stream import ProcessStream, SocketStream, Stream
from mngr.controller.plugin_spec import hookimpl
from mngr.remote_helper import daemon_address

from .base import Provider, Reached, agent_window_target

LOCAL_HOST = "local"


def host_dir() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get("MNGR_HOST_DIR") or "~/.mngr"))


class LocalProvider(Provider):
    name = "local"

    def known_hosts(self) -> Sequence[str]:
        # A machine that never had an agent (mngr used only for remote hosts) has nothing to
        # list: no need to start a helper to hear so.
        try:
            with os.scandir(os.path.join(host_dir(), "agents")) as entries:
                if next(entries, None) is None:
                    return []
        except FileNotFoundError:
            return []
        except OSError:
            pass  # unreadable: let the helper say what is wrong
        return [LOCAL_HOST]

    def check_host(self, host: str) -> None:
        if host != LOCAL_HOST:
            from mngr.controller.errors import UsageError

            raise UsageError(f"provider {self.name!r} has no host named {host!r}")

    def default_host(self) -> str:
        return LOCAL_HOST

    def open_stream(self, host: str, *, warm: bool = True) -> Stream:
        self.check_host(host)
        path = daemon_socket_path(host_dir(), os.environ.get("TMUX_TMPDIR", ""))
        if warm and len(path) <= daemon_address.MAX_SOCKET_PATH and os.environ.get("MNGR_HOST_DAEMON") != "0":
            try:
                stream = SocketStream.connect(LOCAL_HOST, path)
            except OSError:
                pass  # no daemon (yet): the bootstrap below starts one for next time
            else:
                # A stopped daemon still takes connections: the host handle probes it first.
                stream.proven = False
                return stream
        python = str(self.settings.get("python") or sys.executable)
        return ProcessStream(LOCAL_HOST, stage1_argv(python))

    def idle_defaults(self, host: str) -> Mapping[str, Any]:
        """Off unless providers.local.idle_timeout says otherwise; idle_command runs after
        the agents are stopped (the local machine itself is never powered off by mngr)."""
        return {"timeout": self.settings.get("idle_timeout"), "command": str(self.settings.get("idle_command") or "")}

    def resolve_work_dir(self, host: str, work_dir: str | None) -> str:
        # Relative to where the user runs mngr, as for any local command.
        return os.path.abspath(os.path.expanduser(work_dir or os.getcwd()))

    def agent_base_env(self, host: str) -> dict[str, str] | None:
        env = dict(os.environ)
        for key in ("TMUX", "TMUX_PANE"):
            env.pop(key, None)
        return env

    def agent_umask(self, host: str) -> int | None:
        current = os.umask(0o022)
        os.umask(current)
        return current

    def reach_port(self, host: str, port: int, agent_id: str) -> Reached:
        self.check_host(host)
        return Reached("localhost", port)  # this machine: as the agent sees it

    def attach_argv(self, host: str, session: str) -> list[str]:
        self.check_host(host)
        if os.environ.get("TMUX"):
            return ["tmux", "switch-client", "-t", agent_window_target(session)]
        return ["tmux", "attach-session", "-t", agent_window_target(session)]


@hookimpl
def mngr_providers() -> list[type[Provider]]:
    return [LocalProvider]
