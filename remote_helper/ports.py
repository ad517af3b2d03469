"""Which TCP ports something listens on, on this host's loopback.

`mngr open` asks before it forwards or tunnels a port: a port nobody listens on is an error
the user can act on ("nothing listens on port 8123"), where a forward to it would only give
the browser a connection that closes at once. A connection attempt, rather than reading
/proc/net/tcp, answers the same on every system and for servers in any network namespace
the host shares with its agents.
"""

import socket

from .errors import RequestFailed

# A listener on the loopback answers at once (accepted or refused); this only bounds a
# firewall that drops the packets.
CONNECT_SECONDS = 1.0
MAX_PORTS = 64


def listening(ports):
    """The ports of ``ports`` that accept a connection on 127.0.0.1 or ::1, in order."""
    if not isinstance(ports, list) or len(ports) > MAX_PORTS:
        raise RequestFailed("invalid", "ports must be a list of at most %d port numbers" % MAX_PORTS)
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise RequestFailed("invalid", "not a TCP port number: %r" % (port,))
    return [port for port in ports if _accepts(port)]


def _accepts(port):
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here
        try:
            probe.settimeout(CONNECT_SECONDS)
            probe.connect((address, port))
            return True
        except OSError:
            continue
        finally:
            probe.close()
    return False
