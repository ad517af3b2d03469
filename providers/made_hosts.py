"""Providers that make their hosts (docker containers, Modal sandboxes): what they share.

Such a provider makes a host per agent unless ``--host`` names a shared one, names it after
the agent, removes it with its last agent, and sees only the hosts of its namespace (by
default the user's name). It keeps a small registry of its hosts and their agents' names in
the state dir (``PROVIDER_hosts.NAMESPACE.json``): not to find hosts (the engine or Modal
lists them), but to report what it can no longer see (a host removed behind mngr's back, a
create cut short) until ``mngr destroy`` forgets it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from mngr.controller.channel import protocol
from mngr.controller.errors import ConfigError, UsageError
from mngr.controller.paths import changing_state_json, read_state_dict
from mngr.remote_helper import published_urls

from .base import Provider

HOST_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


class MadeHostsProvider(Provider):
    known_settings: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: Mapping[str, Any] | None = None, hosts: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings, hosts)
        for key in self.settings:
            if key not in self.known_settings:
                raise ConfigError(f"unknown setting providers.{self.name}.{key} "
                                  f"(known: {', '.join(sorted(self.known_settings))})")
        self.namespace = str(self.settings.get("namespace") or user_name())
        if not HOST_NAME.match(self.namespace):
            raise ConfigError(f"providers.{self.name}.namespace {self.namespace!r}: letters, digits, '.', '_', '-'")

    def default_host(self) -> str:
        raise UsageError(f"the {self.name} provider makes a host per agent: name the agent, or pass --host")

    def host_for_new_agent(self, agent_name: str) -> str:
        return agent_name

    def check_host(self, host: str) -> None:
        if not HOST_NAME.match(host):
            raise UsageError(f"invalid {self.name} host name {host!r}: letters, digits, '.', '_' and '-', "
                             "starting with a letter or digit")

    # -- the registry -------------------------------------------------------------------------
    # host -> {"agents": [names], and what the provider keeps: "pending" (agents whose create
    # has not finished), ids of the host's parts}

    def _registry(self) -> dict[str, dict[str, Any]]:
        return read_state_dict(self._registry_name())

    def _registry_changes(self) -> contextlib.AbstractContextManager[dict[str, Any]]:
        return changing_state_json(self._registry_name())

    def _registry_name(self) -> str:
        return f"{self.name}_hosts.{self.namespace}.json"

    def listed(self, host: str, names: Sequence[str]) -> None:
        known = self._registry().get(host)
        if known is not None and known.get("pending"):
            return  # its create is still running, or was cut short: that record stays
        if (known or {}).get("agents") == sorted(names) or (known is None and not names):
            return  # the usual listing: nothing to write, no lock to take
        with self._registry_changes() as hosts:
            if host in hosts or names:
                hosts.setdefault(host, {})["agents"] = sorted(names)

    def agent_created(self, host: str, name: str) -> None:
        with self._registry_changes() as hosts:
            entry = hosts.setdefault(host, {})
            entry["agents"] = sorted(set(entry.get("agents", [])) | {name})
            entry.pop("pending", None)

    def forget_agent(self, host: str, name: str) -> None:
        """Drop an agent whose host is gone from the registry (``mngr destroy``)."""
        with self._registry_changes() as hosts:
            entry = hosts.get(host)
            if entry is not None:
                entry["agents"] = [agent for agent in entry.get("agents", []) if agent != name]
                if not entry["agents"]:
                    del hosts[host]


def gone_agents(names: Sequence[str], problem: str) -> protocol.AgentList:
    """The registry's agents of a host that cannot be asked, as GONE, with why."""
    return protocol.AgentList(agents=[
        protocol.AgentInfo(id="", name=name, type="", state="GONE", command="", work_dir="", created_at="",
                           problem=problem)
        for name in names
    ])


def stopped_agent(record_json: bytes) -> protocol.AgentInfo | None:
    """An agent of a stopped host, from its ``record.json`` (None if that is not one)."""
    try:
        record = json.loads(record_json)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        return None
    return protocol.AgentInfo(
        id=str(record.get("id", "")), name=record["name"], type=str(record.get("type", "")), state="STOPPED",
        command=str(record.get("command", "")), work_dir=str(record.get("work_dir", "")),
        created_at=str(record.get("created_at", "")),
        labels={str(k): str(v) for k, v in (record.get("labels") or {}).items()},
        archived=record.get("archived") is True,
        # The declared ones: a stopped host is listed from its agents' records alone.
        urls=dict(published_urls.declared_of(record)),
    )


def build_arg_options(raw: Sequence[str], provider: str, flags: Collection[str], valued: Collection[str],
                      known: str) -> list[tuple[str, str]]:
    """The ``--build-arg`` values of a new host, each split like a shell command line, as
    (option, value) pairs in order: ``""`` for a flag; ``--opt=value`` and ``--opt value``
    alike. An unknown option, or one without its value, is a UsageError naming the known ones."""
    import shlex

    words: list[str] = []
    for item in raw:
        try:
            words += shlex.split(item)
        except ValueError as exc:
            raise UsageError(f"cannot read --build-arg {item!r}: {exc}") from exc
    words.reverse()
    found = []
    while words:
        word = words.pop()
        option, _, inline = word.partition("=")
        if option in flags and not inline:
            found.append((option, ""))
            continue
        if option not in valued:
            raise UsageError(f"unknown build arg {word!r} for the {provider} provider (known: {known})")
        if not inline and not words:
            raise UsageError(f"build arg {option} needs a value")
        found.append((option, inline or words.pop()))
    return found


def dockerfile_path(value: str) -> str:
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.isfile(path):
        raise UsageError(f"--dockerfile {value!r}: no such file")
    return path


def positive_number(value: Any, what: str) -> float:
    import math

    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if not math.isfinite(number) or number <= 0:
        raise UsageError(f"{what} must be a positive number, not {value!r}")
    return number


def user_name() -> str:
    import getpass

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", name) or "user"

