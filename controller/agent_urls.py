"""The URLs an agent serves: declared with ``mngr create --port PORT[:NAME]`` or an agent
type's ``ports``, or published by the agent itself while it runs (a line ``NAME=PORT`` or
``NAME=URL`` in ``$MNGR_AGENT_DIR/urls``, read by the helper: remote_helper/published_urls.py).

An agent's URLs are {name: URL} as seen on its host, in the order declared; ``mngr list``
shows them and ``mngr open`` makes one reachable from this machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .errors import UsageError

# As the helper checks them (remote_helper/published_urls.py): a label key's characters.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def port_url(port: int) -> str:
    """The URL of a port on the agent's host, as the agent's own host reaches it."""
    return f"http://localhost:{port}/"


def parse_ports(specs: Iterable[str], option: str = "--port") -> dict[str, str]:
    """``PORT[:NAME]`` specs as {name: URL}, in the order given; a spec without a name is
    named after its port."""
    urls: dict[str, str] = {}
    for spec in specs:
        port_text, _, name = str(spec).partition(":")
        if not port_text.isdecimal() or not 0 < int(port_text) < 65536:
            raise UsageError(f"{option} expects PORT[:NAME] with a port from 1 to 65535, got {spec!r}")
        name = name or port_text
        if not NAME_PATTERN.match(name):
            raise UsageError(f"{option} {spec!r}: invalid name {name!r}: letters, digits and _.- "
                             f"(at most 63), starting with a letter or digit")
        if name in urls:
            raise UsageError(f"{option}: the name {name!r} is given twice")
        urls[name] = port_url(int(port_text))
    return urls


def declared(type_ports: Iterable[str], given: Mapping[str, str] | None) -> dict[str, str] | None:
    """An agent's declared URLs: its type's, with the ones given at create over them (by
    name); None when there are none."""
    urls = parse_ports(type_ports, "the agent type's ports")
    urls.update(given or {})
    return urls or None
