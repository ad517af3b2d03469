"""The console script's side of the resident mngr (controller/resident.py).

Before it imports anything of mngr, a plain ``mngr push``/``mngr pull`` offers itself to
the resident: a per-user process with mngr already imported, listening on a unix socket
in the state dir whose name is the *identity* of this mngr (its Python files' sizes and mtimes,
the interpreter, its flags and path; ``identity``). An upgraded or edited mngr has another
identity, so it never reaches an old resident.

The client sends its argv, environment, umask, the facts about this process a command's
outcome can depend on (``_context``), and its fds 0, 1, 2 and its cwd (SCM_RIGHTS). The
resident answers READY once the command could start there exactly as here, or DECLINE;
only then does the client say GO, and only after GO does the resident start the command.
So the client falls back to running the command itself (``run`` returns) only when it
never said GO, which means the command never started: a command cannot run twice. After
GO the client never runs it: it relays SIGINT, SIGTERM, SIGHUP, SIGQUIT (and Ctrl-Z) and
leaves with the command's exit status, or, if the resident vanished, says so (exit 1).

Keep this module's imports to os, sys, marshal, _socket, _signal and binascii: its whole
point is to cost nothing before the answer.
"""

from __future__ import annotations

import marshal
import os
import sys

PROTOCOL = 1
READY, DECLINE, GO, EXITED, KILLED = b"R", b"D", b"G", b"E", b"K"
HANDSHAKE_SECONDS = 2.0  # a resident that does not answer at once is not worth waiting for
FORWARDED = (1, 2, 3, 15)  # SIGHUP, SIGINT, SIGQUIT, SIGTERM
_SIGTSTP, _SIGCONT, _SIGSTOP = 20, 18, 19
_SUBDIRS = ("controller", "providers", "remote_helper")
_STATUS_LINES = (b"Uid:", b"Gid:", b"Groups:", b"CapInh:", b"CapPrm:", b"CapEff:", b"CapBnd:", b"CapAmb:",
                 b"NoNewPrivs:", b"Seccomp:", b"Cpus_allowed:", b"Mems_allowed:")
_NAMESPACES = ("mnt", "net", "pid", "user", "ipc", "uts", "cgroup")


class Attempt:
    """What a run that did not go through the resident learnt: whether to start one."""

    def __init__(self, directory: str, blob: bytes, start_one: bool) -> None:
        self.directory = directory
        self.blob = blob
        self.start_one = start_one


def wanted(argv: list[str]) -> bool:
    """Only a plain push or pull, on Linux, not turned off by MNGR_RESIDENT."""
    return (sys.platform == "linux" and bool(argv) and argv[0] in ("push", "pull")
            and os.environ.get("MNGR_RESIDENT", "1").lower() not in ("0", "false", "no", "off")
            and "_MNGR_COMPLETE" not in os.environ)


def socket_dir() -> str:
    from mngr.remote_helper.guarded import controller_state_dir

    return os.path.join(controller_state_dir(), "resident")


def socket_name(blob: bytes) -> str:
    import binascii

    return f"{binascii.crc32(blob):08x}-{len(blob):x}.sock"


def identity() -> bytes:
    """This mngr's code and interpreter, as bytes: equal in two processes only if both run
    the same files with the same interpreter, flags, path and start-up environment."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    files: list[tuple[str, int, int]] = []
    for sub in _SUBDIRS:
        _stat_tree(os.path.join(root, sub), files)
    places = []
    for entry in sys.path:
        try:
            places.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            places.append((entry, 0))
    executable = os.stat(sys.executable)
    environment = sorted((key, value) for key, value in os.environ.items()
                         if key.startswith("PYTHON") or key in ("LANG", "LC_ALL", "LC_CTYPE"))
    return marshal.dumps((PROTOCOL, root, files, places, sys.executable, executable.st_size,
                          executable.st_mtime_ns, sys.version, repr(sys.flags), sys.warnoptions,
                          sorted(sys._xoptions.items()), environment))


def _stat_tree(directory: str, into: list[tuple[str, int, int]]) -> None:
    """The Python files below ``directory``: what a command runs. Caches beside them
    (``__pycache__``, a linter's ``.ruff_cache``) and other files change as tools run and
    say nothing of the code."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__pycache__":
                continue
            if entry.is_dir(follow_symlinks=False):
                _stat_tree(entry.path, into)
            elif entry.name.endswith(".py"):
                status = entry.stat()
                into.append((entry.path, status.st_size, status.st_mtime_ns))


def context() -> tuple[object, ...]:
    """What about this process a command's outcome may depend on and a resident's child
    could not take over: credentials, namespaces, cgroup, limits, CPU set, niceness. A
    resident serves only clients whose context equals its own."""
    try:
        with open("/proc/self/status", "rb") as handle:
            status = [line for line in handle.read().splitlines() if line.startswith(_STATUS_LINES)]
        with open("/proc/self/limits", "rb") as handle:
            limits = handle.read()
        with open("/proc/self/cgroup", "rb") as handle:
            cgroup = handle.read()
        namespaces = [os.readlink(f"/proc/self/ns/{name}") for name in _NAMESPACES]
        root = os.readlink("/proc/self/root")
    except OSError:
        return ("unknown", os.getpid())  # never equal to a resident's
    return (status, limits, cgroup, namespaces, root, os.getpriority(os.PRIO_PROCESS, 0))


def run(argv: list[str]) -> Attempt | None:
    """Run ``mngr ARGV`` through the resident and leave with its status (never returns
    then); or return, having started nothing, for the command to run here: with an
    Attempt (start a resident afterwards?), or None (nothing to do about a resident)."""
    if not wanted(argv):
        return None
    try:
        for fd in (0, 1, 2):
            # Before this opens anything: a closed one would be given the next fd (and
            # exits.fill_closed_standard_streams does for it what Python does not).
            os.fstat(fd)
    except OSError:
        return None
    try:
        directory = socket_dir()
        blob = identity()
        path = os.path.join(directory, socket_name(blob))
    except (OSError, ValueError):
        return None
    if len(path.encode()) >= 108:
        return None
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(HANDSHAKE_SECONDS)
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        _debug(b"no resident of this mngr listens")
        return Attempt(directory, blob, start_one=True)
    except OSError as exc:
        sock.close()
        _debug(b"the resident could not be reached: " + str(exc).encode())
        return Attempt(directory, blob, start_one=False)
    try:
        go = _offer(sock, argv, blob)
    except OSError:
        go = False
    if not go:
        sock.close()
        return Attempt(directory, blob, start_one=False)
    _relay(sock)  # never returns
    return None


def _debug(line: bytes) -> None:
    """With MNGR_DEBUG, say on stderr why the command runs here rather than in the resident."""
    if os.environ.get("MNGR_DEBUG"):
        with _suppress_os_error():
            os.write(2, b"mngr: " + line + b"; the command runs here\n")


_pending: list[int] = []  # signals that came before GO
_connection: object = None  # the socket, once GO was sent: signals are forwarded on it


def _offer(sock: object, argv: list[str], blob: bytes) -> bool:
    """The request, READY, GO: True once GO is sent (the command is the resident's now)."""
    import _signal
    import _socket

    assert isinstance(sock, _socket.socket)
    peer = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    if int.from_bytes(peer[4:8], sys.byteorder) != os.getuid():
        return False  # not ours: say nothing to it
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        umask = os.umask(0)
        os.umask(umask)
        ignored = [number for number in range(1, _signal.NSIG)
                   if _is_ignored(_signal, number)]
        blocked = sorted(_signal.pthread_sigmask(_signal.SIG_BLOCK, []))
        request = marshal.dumps((PROTOCOL, blob, context(), sys.argv, dict(os.environb), umask,
                                 ignored, blocked))  # type: ignore[arg-type]
        fds = (0, 1, 2, cwd)
        rights = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
        header = len(request).to_bytes(8, "little")
        message = header + request
        sent = sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        sock.sendall(message[sent:])  # the rest, if the fds' message did not take it all
    finally:
        os.close(cwd)
    for number in (*FORWARDED, _SIGTSTP, _SIGCONT):
        if not _is_ignored(_signal, number):
            _signal.signal(number, _on_signal)
    try:
        answer = _receive_exactly(sock, 1)
    except OSError:
        answer = b""
    if answer == DECLINE:
        with _suppress_os_error():
            _debug(b"the resident declined: " + sock.recv(200))
    elif answer != READY:
        _debug(b"the resident did not answer in time")
    if answer != READY or _pending:
        # Not started: a signal that came meanwhile does what it does to mngr loading
        # (and the command never runs); else the command runs here.
        sock.close()
        _restore_signals(_signal)
        _act_on_pending()
        return False
    sock.settimeout(None)
    global _connection
    _connection = sock
    try:
        sock.sendall(GO)
    except OSError:  # the session had gone: it never read GO, so nothing started
        _connection = None
        sock.close()
        _restore_signals(_signal)
        _act_on_pending()
        return False
    if os.environ.get("MNGR_DEBUG"):
        os.write(2, b"mngr: run by the resident mngr\n")
    return True


class _suppress_os_error:
    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: object, value: object, traceback: object) -> bool:
        return isinstance(value, OSError)


def _is_ignored(_signal: object, number: int) -> bool:
    try:
        return _signal.getsignal(number) == _signal.SIG_IGN  # type: ignore[attr-defined]
    except (ValueError, OSError):
        return False


def _on_signal(number: int, frame: object) -> None:
    if _connection is None:
        if number == _SIGTSTP:
            os.kill(os.getpid(), _SIGSTOP)
        elif number != _SIGCONT:
            _pending.append(number)
        return
    with _suppress_os_error():
        _connection.send(bytes([number]))  # type: ignore[attr-defined]
    if number == _SIGTSTP:
        os.kill(os.getpid(), _SIGSTOP)  # stopped like the command (the resident stops it)


def _restore_signals(_signal: object) -> None:
    for number in (*FORWARDED, _SIGTSTP, _SIGCONT):
        if _signal.getsignal(number) is _on_signal:  # type: ignore[attr-defined]
            _signal.signal(number, _signal.SIG_DFL if number != 2 else _signal.default_int_handler)  # type: ignore[attr-defined]


def _act_on_pending() -> None:
    """A signal that came while nothing had started: what it does to mngr loading."""
    for number in _pending:
        if number == 2:
            os.write(2, b"mngr: interrupted\n")
            os._exit(130)
        os.kill(os.getpid(), number)  # its default action, restored: ends this process
        os._exit(128 + number)


def _receive_exactly(sock: object, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))  # type: ignore[attr-defined]
        if not chunk:
            break
        data += chunk
    return data


def _relay(sock: object) -> None:
    """Wait for the command's end and leave as it did."""
    try:
        answer = _receive_exactly(sock, 2)
    except OSError:
        answer = b""
    if len(answer) == 2 and answer[:1] == EXITED:
        os._exit(answer[1])
    if len(answer) == 2 and answer[:1] == KILLED:
        import _signal

        number = answer[1]
        _signal.signal(number, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [number])
        os.kill(os.getpid(), number)
        os._exit(128 + number)
    os.write(2, b"mngr: error: the resident mngr process serving this command ended before it did; "
                b"whether the command finished is unknown (MNGR_RESIDENT=0 runs commands without it)\n")
    os._exit(1)


def start_resident(attempt: Attempt) -> None:
    """Start a resident in the background (detached, no stdio, minimal environment) for
    the next commands; any failure is silent: commands run without one."""
    try:
        import subprocess

        # The interpreter's flags, so the resident's identity is this process's.
        flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
        code = ("import sys, marshal; sys.path[:] = marshal.loads(bytes.fromhex(sys.argv[1])); "
                "from mngr.controller.resident import serve; serve(sys.argv[2], sys.argv[3])")
        environment = {key: value for key, value in os.environ.items()
                       if key.startswith("PYTHON") or key in ("LANG", "LC_ALL", "LC_CTYPE")}
        if "MNGR_RESIDENT_IDLE" in os.environ:
            environment["MNGR_RESIDENT_IDLE"] = os.environ["MNGR_RESIDENT_IDLE"]
        subprocess.Popen([sys.executable, *flags, "-c", code, marshal.dumps(sys.path).hex(),
                          attempt.directory, socket_name(attempt.blob)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         cwd="/", env=environment, start_new_session=True, close_fds=True)
    except Exception:  # a resident is an optimisation: commands run without one
        pass
