"""Where agents are, as the last listings saw them, kept where reading it costs nothing.

Completing must never ask a host: agent and host names come from ``<state dir>/completion.json``,
which every listing (``mngr list``, and every command that finds agents by name) rewrites when
what it saw changed. Agents on hosts that did not answer keep their cached entries.

The same record lets a command that names one agent go straight to its host (agent_lookup.py).
For that it also keeps the names a *complete* listing (every provider, every host answered)
saw exactly once, with the ``scope`` of that listing (which providers and hosts there were):
such a name cannot be ambiguous unless an agent of that name appeared since.
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
    _change(lambda entries: entries | {(name, host, provider)}, unproven=name)


def agent_removed(name: str, host: str, provider: str) -> None:
    _change(lambda entries: entries - {(name, host, provider)})


def _change(change: Callable[[set[tuple[str, str, str]]], set[tuple[str, str, str]]], unproven: str = "") -> None:
    with changing_state_json(CACHE) as cache:
        cache["agents"] = [list(entry) for entry in sorted(change(set(_entries(cache))))]
        unique = as_dict(cache.get("unique"))
        if unproven and unproven in unique.get("names", []):  # one more of that name may exist now
            unique["names"] = [name for name in unique["names"] if name != unproven]


def remember_unique(names: Iterable[str], scope: str) -> None:
    """After a complete listing of ``scope``: ``names`` are those it saw exactly once."""
    content = {"scope": scope, "names": sorted(set(names))}
    if as_dict(read_state_json(CACHE)).get("unique") == content:
        return
    with changing_state_json(CACHE) as cache:
        cache["unique"] = content


def sole_location(name: str, scope: str) -> tuple[str, str] | None:
    """(host, provider) of agent ``name`` when the record holds it on one host only and the
    last complete listing, of this same ``scope``, saw it exactly once; None otherwise."""
    content = as_dict(read_state_json(CACHE))
    unique = as_dict(content.get("unique"))
    if unique.get("scope") != scope or name not in unique.get("names", []):
        return None
    places = [(host, provider) for agent, host, provider in _entries(content) if agent == name]
    return places[0] if len(places) == 1 else None


def _entries(content: object) -> list[tuple[str, str, str]]:
    agents = as_dict(content).get("agents")
    if not isinstance(agents, list):
        return []
    return sorted({(str(entry[0]), str(entry[1]), str(entry[2])) for entry in agents
                   if isinstance(entry, list) and len(entry) == 3})


def cached_agents() -> list[tuple[str, str, str]]:
    """(agent, host, provider) as the last listings saw them."""
    return _entries(read_state_json(CACHE))
