"""A push's or pull's first requests to the host, sent while the rest of mngr loads.

Before it can ask the host anything, a push or pull imports most of mngr, reads its config
and finds the agent (about 40 ms); then it opens the channel to the recorded host and asks
two things, one after the other: is the agent there (FindAgent), and what is its work dir
now (GetManifest). Both answers depend on nothing mngr computes meanwhile, so ``start_early``
guesses them from the raw arguments and what the state dir holds, before the rest of mngr
is imported: it connects to the host daemon's socket that last served the agent's recorded
host and sends both requests. The host answers while mngr loads.

The guess decides nothing. The command runs exactly as it would without it: it finds the
agent its own way (agent_lookup.py) and opens its channel through its provider. Only when
the provider opens the very socket the guess connected to (channel/early.py) does the command get
that connection, with the requests already sent on it; the RPC client then uses an early
reply only for a request equal, field for field, to the one sent (channel/rpc.py), and
sends anything else as usual. A guess nobody takes is closed unread.

Both requests change nothing on the host, so either may run without its answer being used.
The connection is as unproven as any other to a forwarded socket (the host daemon may have
gone): the host handle treats it the same way (hosts.py), and the early requests share its
fate.

Where each host's socket is: ``channels.json`` in the state dir, {"provider/host": path},
written when a socket served a command (``remember``). Keep this module's imports to the
stdlib and the modules local_walk.py loads: it runs before the rest of mngr on purpose.
"""

from __future__ import annotations

from mngr.remote_helper import wire

from .channel import early
from .paths import as_dict, read_state_json

# As typing.TYPE_CHECKING (see local_walk.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

RECORD = "channels.json"
_CONNECT_SECONDS = 0.5  # a socket that does not take a connection at once is not worth waiting for


_known_paths: dict[str, str] | None = None  # channels.json as read (None: not read)


def start_early(argv: Sequence[str], known_tag: Callable[[str, bool], str | None]) -> None:
    """For a plain ``push``/``pull`` (cli/direct.py reads the arguments) of an agent the
    state dir places on one host with a socket known for it: connect, send Ping, FindAgent
    and GetManifest. ``known_tag(agent, include_ignored)``: the tag of the host manifest kept
    for the agent, as the command will send it (None: unknown, no GetManifest)."""
    try:
        _start(argv, known_tag)
    except Exception:  # a guess must never stop the command: it runs without one
        early.discard()


def _start(argv: Sequence[str], known_tag: Callable[[str, bool], str | None]) -> None:
    from .cli.direct import parse

    parsed = parse(argv)
    if parsed is None:
        return
    action, name, _, options = parsed
    place = _recorded_place(name)
    if place is None:
        return
    path = _paths().get(place)
    if not path:
        return
    include_ignored = bool(options["include_gitignored"])
    # A Ping first: the handle probes an unproven socket with it (hosts.py), and a daemon
    # that hangs is then found as quickly as without the early requests.
    requests = [wire.encode_body("Ping", {}), wire.encode_body("FindAgent", {"name": name})]
    tag = known_tag(name, include_ignored)
    if tag is not None:
        requests.append(wire.encode_body("GetManifest", {
            "name": name, "include_ignored": include_ignored, "work_dir": "",
            # A push refuses to overwrite the host's uncommitted changes (sync.push).
            "with_uncommitted": action == "push" and not options["force"], "known": tag}))
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(_CONNECT_SECONDS)
        sock.connect(path)
        sock.settimeout(None)
        sock.sendall(b"".join(wire.encode_frame(request_id, body)
                              for request_id, body in enumerate(requests, start=1)))
    except OSError:
        sock.close()
        return
    early.offer(early.Prefetched(path, sock, dict(enumerate(requests, start=1))))


def remember(provider: str, host: str, path: str) -> None:
    """``path`` is the socket that reaches ``host`` of ``provider`` now."""
    key = f"{provider}/{host}"
    if _paths().get(key) == path:
        return  # the usual case: nothing to write
    from .paths import changing_state_json

    with changing_state_json(RECORD) as paths:
        paths[key] = path
    _paths()[key] = path


def _paths() -> dict[str, str]:
    global _known_paths
    if _known_paths is None:
        _known_paths = {str(key): str(value) for key, value in as_dict(read_state_json(RECORD)).items()
                        if isinstance(value, str)}
    return _known_paths


def _recorded_place(name: str) -> str | None:
    """"provider/host" of the one place the record of agents (completion.py) has ``name``
    (the command checks that the agent is there)."""
    from .completion import CACHE

    agents = as_dict(read_state_json(CACHE)).get("agents")
    if not isinstance(agents, list):
        return None
    places = {f"{entry[2]}/{entry[1]}" for entry in agents
              if isinstance(entry, list) and len(entry) == 3 and entry[0] == name}
    return places.pop() if len(places) == 1 else None
