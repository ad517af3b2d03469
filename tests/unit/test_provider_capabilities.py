"""The Provider interface holds what every provider does; the rest are capabilities that
the providers that have them implement, and callers ask for with isinstance."""

from __future__ import annotations

import pytest

from mngr.providers import base
from mngr.providers.docker import DockerProvider
from mngr.providers.local import LocalProvider
from mngr.providers.modal import ModalProvider
from mngr.providers.ssh import SshProvider

CAPABILITIES = (base.MakesHosts, base.HostSnapshots, base.OfflineListing, base.ListingProblems,
                base.HearsListings, base.AgentRegistry, base.RemembersHosts, base.ChecksHostKeys, base.WarmPath,
                base.AgentEnvironment)
HAS = {
    LocalProvider: {base.AgentEnvironment},
    SshProvider: {base.RemembersHosts, base.ChecksHostKeys, base.WarmPath},
    DockerProvider: {base.MakesHosts, base.HostSnapshots, base.OfflineListing, base.HearsListings,
                     base.AgentRegistry},
    ModalProvider: {base.MakesHosts, base.HostSnapshots, base.OfflineListing, base.HearsListings,
                    base.AgentRegistry, base.ListingProblems},
}


@pytest.mark.parametrize("provider_class", list(HAS), ids=lambda cls: cls.name)
def test_each_provider_has_exactly_its_capabilities(provider_class: type[base.Provider]) -> None:
    assert {capability for capability in CAPABILITIES if issubclass(provider_class, capability)} == \
        HAS[provider_class]


def test_the_base_interface_has_no_capability_of_its_own() -> None:
    """A provider that implements only what every provider must is a provider without any."""

    class Bare(base.Provider):
        name = "bare"

        def known_hosts(self) -> list[str]:
            return ["h"]

        def default_host(self) -> str:
            return "h"

        def open_stream(self, host: str, *, warm: bool = True):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def attach_argv(self, host: str, session: str) -> list[str]:
            return ["true"]

    bare = Bare()
    assert not any(isinstance(bare, capability) for capability in CAPABILITIES)
    assert bare.host_for_new_agent("x") == "h" and bare.resolve_work_dir("h", None) == "~"
    bare.check_host("h")
