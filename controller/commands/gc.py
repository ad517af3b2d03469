"""gc: find and remove what interrupted operations left, on every reachable host at once.

Each host is given the host timeout: a host that does not answer (a frozen helper, a hung
sshd) is reported, and every other host is cleaned all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..agent_lookup import fleet_listing
from ..errors import MngrError
from ..fanout import fan_out
from ..fleet import HostFailure
from ..hosts import HostHandle

if TYPE_CHECKING:
    from ..cli.app import App


@dataclass
class GcRequest:
    dry_run: bool = False
    min_age: float = 600.0  # seconds: files younger than this are left alone
    providers: Sequence[str] = ()  # only these providers' hosts (none: every provider)


@dataclass
class Leftover:
    host: str
    provider: str
    kind: str
    what: str


@dataclass
class GcResult:
    leftovers: list[Leftover] = field(default_factory=list)
    errors: list[HostFailure] = field(default_factory=list)
    hosts_cleaned: int = 0


def collect_garbage(app: App, request: GcRequest) -> GcResult:
    result = GcResult()
    providers = app.providers(request.providers)
    with fleet_listing(app, providers) as listing:
        answered = [report.handle for report in listing.hosts]
        asked = {(handle.provider_name, handle.host) for handle in listing.handles}
        for provider in providers:  # a host with no agents left (local) may still hold leftovers
            try:
                host = provider.default_host()
            except MngrError:
                continue  # the provider has no host of its own (ssh, docker, modal)
            if (provider.name, host) not in asked:
                extra = HostHandle(provider, host, app.host_timeout)
                listing.handles.append(extra)
                answered.append(extra)
        result.errors += list(listing.errors)
        # A connection's set-up and the request's own timeout (gc waits for the host's
        # operation lock, then walks mngr's own files: small).
        outcomes = fan_out(lambda handle: handle.collect_garbage(request.dry_run, request.min_age), answered,
                           item_timeout=2 * app.host_timeout)
        for outcome in outcomes:
            handle = outcome.item
            if outcome.value is None:
                result.errors.append(HostFailure(handle.host, handle.provider_name, outcome.error or "failed"))
                continue
            result.hosts_cleaned += 1
            result.leftovers += [Leftover(handle.host, handle.provider_name, kind, what)
                                 for kind, what in outcome.value]
    return result
