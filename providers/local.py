"""The local provider: the user's own machine, as one host named ``local``.

The helper runs as a plain child process started with the same first stage every remote
host gets, so the local host exercises exactly the path remote hosts use. Stopping the local
host stops its agents and never powers anything off.

Settings (``[providers.local]`` in config):

``python``  interpreter that runs the helper (default: the one running mngr; it is
            certainly present, and starting it skips a ``python3`` lookup on PATH)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from mngr.controller.channel.bootstrap import stage1_argv
from mngr.controller.channel.stream import ProcessStream, Stream
from mngr.controller.plugin_spec import hookimpl

from .base import Provider

LOCAL_HOST = "local"


class LocalProvider(Provider):
    name = "local"

    def known_hosts(self) -> Sequence[str]:
        return [LOCAL_HOST]

    def default_host(self) -> str:
        return LOCAL_HOST

    def open_stream(self, host: str) -> Stream:
        self.check_host(host)
        python = str(self.settings.get("python") or sys.executable)
        return ProcessStream(LOCAL_HOST, stage1_argv(python))

    def attach_argv(self, host: str, session: str) -> list[str]:
        self.check_host(host)
        if os.environ.get("TMUX"):
            return ["tmux", "switch-client", "-t", "=" + session]
        return ["tmux", "attach-session", "-t", "=" + session]


@hookimpl
def mngr_providers() -> list[type[Provider]]:
    return [LocalProvider]
