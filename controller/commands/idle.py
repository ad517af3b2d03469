"""limit and keepalive: the idle settings of an agent's host, and leases on its activity.

The settings belong to the host, not to the agent: the agent only says which host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..channel.protocol import HostIdle, IdleSettings, SetIdleSettings
from ..errors import UsageError
from .lookup import find_agents

if TYPE_CHECKING:
    from ..cli.app import App

MAX_LEASE_SECONDS = 366 * 86400


@dataclass
class LimitRequest:
    """Each field None: left as it is (with all of them None, the settings are only read).
    Durations as the user gave them ("30m", "90"); modes and sources as idle_options has them."""

    name: str
    idle_timeout: str | None = None
    idle_mode: str | None = None
    activity_sources: str | None = None
    stop_grace: str | None = None
    log_lines: int = 0  # the watcher's last N decisions too


@dataclass
class LimitResult:
    settings: IdleSettings
    host: str
    provider: str
    idle: HostIdle | None  # how long the host has been idle and why it last stopped (None: an older helper)
    log: str  # the watcher's decisions asked for, one JSON line each


@dataclass
class KeepaliveRequest:
    name: str
    seconds: float


@dataclass
class KeepaliveResult:
    name: str
    host: str
    provider: str
    seconds: float


def limit(app: App, request: LimitRequest) -> LimitResult:
    from ..idle_options import settings_requests

    if not 0 <= request.log_lines <= 10000:
        raise UsageError("--log: between 0 and 10000 decisions")
    with find_agents(app, [request.name]) as found:
        (agent,) = found.agents
        handle = agent.handle
        changing = any(value is not None for value in
                       (request.idle_timeout, request.idle_mode, request.activity_sources, request.stop_grace))
        requests = [SetIdleSettings()]  # nothing to change: only ask
        if changing:
            requests = settings_requests(request.idle_timeout, request.idle_mode, request.activity_sources,
                                         handle.provider.idle_defaults(handle.host), request.stop_grace)
        for settings_request in requests:
            settings = handle.set_idle_settings(settings_request)
        idle = handle.list_host(app.quiet_seconds).host
        log = handle.watcher_log(request.log_lines).decode("utf-8", "replace") if request.log_lines else ""
    return LimitResult(settings, handle.host, handle.provider_name, idle, log)


def keepalive(app: App, request: KeepaliveRequest) -> KeepaliveResult:
    if not 0 <= request.seconds <= MAX_LEASE_SECONDS:
        raise UsageError("--for is at most a year")
    with find_agents(app, [request.name]) as found:
        (agent,) = found.agents
        agent.handle.keep_alive(agent.info.name, request.seconds)
    return KeepaliveResult(agent.info.name, agent.host, agent.provider, request.seconds)
