"""The resident mngr: a per-user process that keeps mngr imported and runs plain pushes
and pulls for the console script (controller/cli/resident_client.py), so that they do not
pay Python's imports (40-60 ms) each time.

Three kinds of process:

- the **resident** (``serve``): imports what a push or pull needs, then accepts
  connections on ``<state dir>/resident/<identity>.sock`` (0600, in a 0700 dir) with one
  *session* per connection, always forked ahead: the next one waits for its connection
  while the last one serves its own. It reads nothing a client sends, so no command's
  environment ever reaches it. It exits after ``MNGR_RESIDENT_IDLE`` seconds (default 900)
  without a connection, when mngr's files no longer have its identity, or when its socket
  is removed. One per identity: it holds ``<identity>.lock``.
- a **session**, per command: checks the peer's uid, reads the request, takes on the
  client's cwd, environment, umask and fds 0-2, and declines unless the command would run
  exactly as in the client (same identity, same context, a plain push/pull, not turned off
  by config). Then READY, with the *command* forked meanwhile; on GO the command starts,
  and the session relays the client's signals to it, kills it if the client goes away, and
  sends its exit status (without GO the command leaves, having started nothing).
- the **command**: runs entry.run_here, the code the console script runs in-process.

Each command is a fresh fork, so nothing of one command (environment, caches, module
state) is seen by another. The command dies with its session (PR_SET_PDEATHSIG), so a
killed session never leaves it writing to a terminal whose client has gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import io
import marshal
import os
import select
import signal
import socket
import sys
import time

from .cli import resident_client as client

IDLE_SECONDS = 900.0
_CHECK_SECONDS = 2.0  # how often an idle resident looks at its socket and identity
_REQUEST_SECONDS = 5.0
_IDENTITY_SECONDS = 10.0  # how often it checks that mngr's files are still the ones it loaded
_PRELOAD = (
    "mngr.controller.cli.entry", "mngr.controller.cli.direct", "mngr.controller.cli.app",
    "mngr.controller.cli.exits", "mngr.controller.cli.sync_run", "mngr.controller.sync",
    "mngr.controller.agent_lookup", "mngr.controller.early_channel", "mngr.controller.local_walk",
    "mngr.controller.channel.early", "mngr.controller.channel.rpc", "mngr.controller.channel.stream",
    "mngr.controller.channel.bootstrap", "mngr.controller.hosts", "mngr.controller.fleet",
    "mngr.controller.plugins", "mngr.controller.config", "mngr.controller.sync_delta",
    "mngr.controller.output", "mngr.controller.completion", "mngr.providers.local", "mngr.providers.ssh",
    "mngr.remote_helper.wire", "mngr.remote_helper.state", "mngr.remote_helper.agent_records",
    "tomllib", "subprocess", "ctypes", "concurrent.futures", "hashlib", "secrets", "json",
)
_PR_SET_PDEATHSIG = 1


def serve(directory: str, name: str) -> None:
    """The resident's life (started detached by resident_client.start_resident)."""
    os.closerange(3, 1 << 16)  # hold nothing the spawning command was given
    with contextlib.suppress(FileExistsError):
        os.mkdir(os.path.dirname(directory), 0o700)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    status = os.lstat(directory)
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        return
    path = os.path.join(directory, name)
    lock = os.open(path[: -len(".sock")] + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another resident of this identity runs, or is starting
    before = client.identity()
    for module in _PRELOAD:
        with contextlib.suppress(Exception):
            __import__(module)
    with contextlib.suppress(Exception):  # every command asks which plugins are installed
        from .entry_points import keep
        from .plugins import ENTRY_POINT_GROUP

        keep(ENTRY_POINT_GROUP)
    blob = client.identity()  # after keep: a distribution installed meanwhile makes it another
    if blob != before or client.socket_name(blob) != name:
        return  # the files changed while loading, or this is not the mngr that was asked for
    own_context = client.context()
    signal.signal(signal.SIGTERM, _leave)
    listener = _listen(path)
    listening = os.stat(path)
    gc.freeze()  # the children's collections skip everything loaded here
    idle = float(os.environ.get("MNGR_RESIDENT_IDLE") or IDLE_SECONDS)
    last_used = last_check = time.monotonic()
    # One session is always forked ahead, waiting for the next connection itself, so a
    # client's wait holds no fork. It says on ``taken`` that it took one (then another is
    # forked); it leaves unused when ``alive`` ends, which is when this process ends.
    taken_read, taken_write = os.pipe()
    alive_read, alive_write = os.pipe()
    pipes = (taken_read, taken_write, alive_read, alive_write)
    spare = 0
    try:
        while True:
            if not spare:
                spare = _fork_spare(listener, blob, own_context, pipes)
            ready, _, _ = select.select([taken_read], [], [], _CHECK_SECONDS)
            if spare in _reap():
                spare = 0  # it took a connection and ended, or died: another is forked
            now = time.monotonic()
            if ready:
                for _ in os.read(taken_read, 64):
                    spare = 0
                last_used = now
                continue
            if now - last_used > idle or not _still_ours(path, listening):
                return
            if now - last_check > _IDENTITY_SECONDS:
                last_check = now
                if client.identity() != blob:
                    return
    finally:
        if _still_ours(path, listening):
            with contextlib.suppress(OSError):
                os.unlink(path)
        # Removed while still locked: one starting meanwhile either opened this file and
        # finds it locked (and leaves), or makes a new one.
        with contextlib.suppress(OSError):
            os.unlink(path[: -len(".sock")] + ".lock")


def _leave(number: int, frame: object) -> None:
    sys.exit(0)  # through serve's finally: the socket goes too


def _listen(path: str) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    old_umask = os.umask(0o177)
    try:
        listener.bind(temporary)
    finally:
        os.umask(old_umask)
    os.chmod(temporary, 0o600)
    listener.listen(64)
    os.replace(temporary, path)  # a client never finds a socket that does not listen yet
    return listener


def _still_ours(path: str, listening: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (listening.st_dev, listening.st_ino)


def _reap() -> set[int]:
    """The children that ended."""
    ended = set()
    with contextlib.suppress(ChildProcessError):
        while True:
            pid = os.waitpid(-1, os.WNOHANG)[0]
            if not pid:
                break
            ended.add(pid)
    return ended


def _fork_spare(listener: socket.socket, blob: bytes, own_context: tuple[object, ...],
                pipes: tuple[int, int, int, int]) -> int:
    """A session forked ahead (0 if no fork was to be had: tried again within _CHECK_SECONDS)."""
    taken_read, taken_write, alive_read, alive_write = pipes
    try:
        pid = os.fork()
    except OSError:
        time.sleep(0.1)
        return 0
    if pid:
        return pid
    code = 1
    try:
        os.close(taken_read)
        os.close(alive_write)
        ready, _, _ = select.select([listener.fileno(), alive_read], [], [])
        if listener.fileno() not in ready:
            os._exit(0)  # the resident ended
        connection, _ = listener.accept()
        os.write(taken_write, b"t")
        for fd in (taken_write, alive_read):
            os.close(fd)
        listener.close()
        code = _session(connection, blob, own_context)
    finally:
        os._exit(code)


def _session(connection: socket.socket, blob: bytes, own_context: tuple[object, ...]) -> int:
    """One command: checks, READY, GO, the command, its status."""
    uid = int.from_bytes(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)[4:8], sys.byteorder)
    if uid != os.getuid():
        return 1
    connection.settimeout(_REQUEST_SECONDS)
    request, fds = _receive_request(connection)
    try:
        declined = _take_on(request, fds, blob, own_context)
    finally:
        for fd in fds:
            os.close(fd)
    if declined:
        connection.sendall(client.DECLINE + declined.encode())
        return 0
    # The command is forked while READY and GO cross (the fork is off the client's wait),
    # and starts only once GO came: until then it waits on ``go``, and goes unstarted if
    # GO never comes.
    ignored, blocked = request[6], request[7]
    connection.sendall(client.READY)
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_write)
        _command(connection, ignored, blocked, go_read)
    os.close(go_read)
    with contextlib.suppress(OSError):  # as the command does: a signal forwarded at once finds its group
        os.setpgid(pid, pid)
    try:
        answer = connection.recv(1)
    except OSError:
        answer = b""
    if answer != client.GO:
        os.close(go_write)  # the command leaves without starting: the client runs it, or went away
        os.waitpid(pid, 0)
        return 0
    os.write(go_write, client.GO)
    os.close(go_write)
    connection.settimeout(None)
    _forget_standard_streams()
    return _watch(connection, pid)


def _receive_request(connection: socket.socket) -> tuple[tuple[object, ...], list[int]]:
    fds: list[int] = []
    header, ancillary, _, _ = connection.recvmsg(8, socket.CMSG_SPACE(4 * 4))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(data[i:i + 4], sys.byteorder, signed=True) for i in range(0, len(data) - 3, 4)]
    size = int.from_bytes(header, "little") if len(header) == 8 else 0
    body = b""
    while len(body) < size:
        chunk = connection.recv(min(size - len(body), 1 << 20))
        if not chunk:
            break
        body += chunk
    try:
        request = marshal.loads(body)
    except (EOFError, ValueError, TypeError):
        request = ()
    return request, fds


def _take_on(request: tuple[object, ...], fds: list[int], blob: bytes, own_context: tuple[object, ...]) -> str:
    """Become the client's process (cwd, environment, umask, fds 0-2); the reason to
    decline, or "" when the command would run here as it would there."""
    if len(fds) != 4 or len(request) != 8 or request[0] != client.PROTOCOL:
        return "malformed"
    _, their_blob, their_context, argv, environment, umask, _, _ = request
    if their_blob != blob:
        return "another mngr"
    if their_context != own_context:
        return "another context"
    assert isinstance(argv, list) and isinstance(environment, dict) and isinstance(umask, int)
    os.fchdir(fds[3])
    os.environb.clear()
    os.environb.update(environment)
    os.umask(umask)
    time.tzset()
    for number in (0, 1, 2):
        os.dup2(fds[number], number)
    sys.argv = list(argv)
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOWrapper):  # line-buffered on a terminal, as Python starts it
        stdout.reconfigure(line_buffering=os.isatty(1) and not stdout.write_through)
    if not client.wanted(argv[1:]):
        return "not for the resident"
    from .cli.direct import parse

    if parse(argv[1:]) is None:
        return "needs click"
    from .config import Config
    from .errors import MngrError

    try:
        if Config.load().get("resident", True) is False:
            return "turned off in the config"
    except MngrError:
        return "config error: reported by the command itself"
    return ""


def _command(connection: socket.socket, ignored: object, blocked: object, go: int) -> None:
    """The forked command: this process is now the client's mngr, once the session passes
    on the client's GO through ``go`` (else it leaves having done nothing)."""
    code = 1
    try:
        connection.close()
        if os.read(go, 1) != client.GO:
            os._exit(0)
        os.close(go)
        os.setpgid(0, 0)  # signals for the client's process group go to this one's
        _die_with_parent()
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP, signal.SIGCONT,
                       signal.SIGCHLD):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for number in ignored if isinstance(ignored, list) else ():
            with contextlib.suppress(OSError, ValueError):
                signal.signal(number, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked if isinstance(blocked, list) else [])
        from .cli.entry import run_here

        run_here(sys.argv[1:])  # leaves the process itself
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            os.write(2, b"mngr: interrupted\n")
        code = 130
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"mngr: internal error: {type(exc).__name__}: {exc}\n".encode())
    os._exit(code)


def _die_with_parent() -> None:
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the session died before the line above
        os._exit(1)


def _forget_standard_streams() -> None:
    """The session holds none of the client's streams (a reader waits for their end)."""
    null = os.open(os.devnull, os.O_RDWR)
    for number in (0, 1, 2):
        os.dup2(null, number)
    os.close(null)


def _watch(connection: socket.socket, pid: int) -> int:
    """Forward the client's signals to the command until it ends; then its status."""
    child = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    poller.register(child, select.POLLIN)
    client_gone = False
    while True:
        events = dict(poller.poll())
        if child in events:
            break
        if connection.fileno() in events and not client_gone:
            data = connection.recv(64)
            if not data:  # the client died: so does its command
                client_gone = True
                poller.unregister(connection.fileno())
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                continue
            for number in data:
                _forward(pid, number)
    _, status = os.waitpid(pid, 0)
    os.close(child)
    if client_gone:
        return 0
    if os.WIFSIGNALED(status):
        message = client.KILLED + bytes([os.WTERMSIG(status)])
    else:
        message = client.EXITED + bytes([os.WEXITSTATUS(status) & 0xFF])
    with contextlib.suppress(OSError):
        connection.sendall(message)
    return 0


def _forward(pid: int, number: int) -> None:
    """As the terminal would: Ctrl-C, Ctrl-\\, a hang-up and Ctrl-Z reach the command's
    process group (its local walk included); SIGTERM the command alone."""
    with contextlib.suppress(ProcessLookupError, ValueError, OSError):
        if number == signal.SIGTERM:
            os.kill(pid, number)
        elif number == signal.SIGTSTP:
            os.killpg(pid, signal.SIGSTOP)
        else:
            os.killpg(pid, number)
