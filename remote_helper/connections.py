"""Which processes talk to which over unix sockets (Linux: sock_diag and /proc/PID/fd).

A process an agent started may serve other agents too: Codex's app-server daemon serves
every codex of the same ``~/.codex``, whichever started it. processes.py asks here before
it ends such a process. Where the kernel does not answer (no /proc, no sock_diag), nothing
is found connected.
"""

import os
import socket
import struct

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x301
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_UDIAG_SHOW_PEER = 0x4
_UNIX_DIAG_PEER = 2
_NLMSG_HEADER = struct.Struct("=IHHII")


def connected(pids, others):
    """The pids in ``pids`` with a unix socket connected to one of ``others``."""
    if not pids or not others:
        return set()
    peers = _unix_peers()
    if not peers:
        return set()
    theirs = set()
    for pid in others:
        theirs |= _socket_inodes(pid)
    return set(pid for pid in pids if any(peers.get(inode) in theirs for inode in _socket_inodes(pid)))


def _socket_inodes(pid):
    inodes = set()
    directory = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(directory)
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(os.path.join(directory, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _unix_peers():
    """{socket inode: its peer's inode} for every connected unix socket on the host."""
    try:
        channel = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
    except (AttributeError, OSError):  # not Linux, or not allowed
        return {}
    try:
        # struct unix_diag_req: family, protocol, pad, states (all), inode, show, cookie.
        request = struct.pack("=BBHIIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, _UDIAG_SHOW_PEER, 0, 0)
        channel.sendall(
            _NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0)
            + request
        )
        peers = {}
        while True:
            data = channel.recv(1 << 16)
            if not data:
                return peers
            offset = 0
            while offset + _NLMSG_HEADER.size <= len(data):
                length, kind, _, _, _ = _NLMSG_HEADER.unpack_from(data, offset)
                if kind == _NLMSG_DONE or length < _NLMSG_HEADER.size:
                    return peers
                if kind == _NLMSG_ERROR:
                    return {}
                # struct unix_diag_msg: family, type, state, pad, inode, cookie; then attributes.
                inode = struct.unpack_from("=I", data, offset + _NLMSG_HEADER.size + 4)[0]
                attribute = offset + _NLMSG_HEADER.size + 16
                while attribute + 4 <= offset + length:
                    size, kind = struct.unpack_from("=HH", data, attribute)
                    if size < 4:
                        break
                    if kind == _UNIX_DIAG_PEER:
                        peers[inode] = struct.unpack_from("=I", data, attribute + 4)[0]
                    attribute += (size + 3) & ~3
                offset += (length + 3) & ~3
    except (OSError, struct.error):
        return {}
    finally:
        channel.close()
