"""Where agents are, as the last listings saw them, kept where reading it costs nothing.

Completing must never ask a host: agent and host names come from ``<state dir>/completion.json``,
which every listing (``mngr list``, and every command that finds agents by name) rewrites when
what it saw changed. Agents on hosts that did not answer keep their cached entries.

The same record lets a command that names an agent go straight to its host (agent_lookup.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .paths import as_dict, changing_state_json, read_state_json

CACHE = "completion.json"


def remember(providers: Iterable[str], seen: Iterable[tuple[str, str, str]],
             unanswered: Iterable[tuple[str, str]]) -> None:
    """Record a listing of ``providers``: ``seen`` (agent, host, provider) of the hosts that
    answered. The cached agents of other providers, and of ``unanswered`` (provider, host)
    hosts (host ``*``: all of that provider's), are kept."""
    listed = set(providers)
    kept = {(provider, host) for provider, host in unanswered}

    def keep(entry: tuple[str, str, str]) -> bool:
        _, host, provider = entry
        return provider not in listed or (provider, host) in kept or (provider, "*") in kept

    before = _entries(read_state_json(CACHE))
    after = sorted({*filter(keep, before), *seen})
    if after == before:
        return  # the usual listing: nothing to write
    with changing_state_json(CACHE) as cache:
        cache["agents"] = [list(entry) for entry in after]


def agent_added(name: str, host: str, provider: str) -> None:
    _change(lambda entries: entries | {(name, host, provider)})


def agent_removed(name: str, host: str, provider: str) -> None:
    _change(lambda entries: entries - {(name, host, provider)})


def host_removed(host: str, provider: str) -> None:
    """Forget every agent of a host mngr no longer searches."""
    if any(entry[1:] == (host, provider) for entry in cached_agents()):
        _change(lambda entries: {entry for entry in entries if entry[1:] != (host, provider)})


def _change(change: Callable[[set[tuple[str, str, str]]], set[tuple[str, str, str]]]) -> None:
    with changing_state_json(CACHE) as cache:
        cache["agents"] = [list(entry) for entry in sorted(change(set(_entries(cache))))]


def _entries(content: object) -> list[tuple[str, str, str]]:
    agents = as_dict(content).get("agents")
    if not isinstance(agents, list):
        return []
    return sorted({(str(entry[0]), str(entry[1]), str(entry[2])) for entry in agents
                   if isinstance(entry, list) and len(entry) == 3})


def cached_agents() -> list[tuple[str, str, str]]:
    """(agent, host, provider) as the last listings saw them."""
    return _entries(read_state_json(CACHE))


def agent_choices(incomplete: str) -> list[str]:
    """What completes an agent argument: each name, and for a name that the record holds on
    several hosts NAME@HOST instead (NAME@PROVIDER/HOST where two providers share the host
    name), which picks one of them (agent_refs.py). Typing ``NAME@`` lists every form."""
    entries = cached_agents()
    hosts_by_name: dict[str, list[tuple[str, str]]] = {}
    for name, host, provider in entries:
        hosts_by_name.setdefault(name, []).append((host, provider))
    choices = set()
    for name, places in hosts_by_name.items():
        qualified = []
        for host, provider in places:
            shared = any(other_host == host and other != provider for other_host, other in places)
            qualified.append(f"{name}@{provider}/{host}" if shared else f"{name}@{host}")
        choices.update(qualified if len(places) > 1 or "@" in incomplete else [name])
    return sorted(choice for choice in choices if choice.startswith(incomplete))
