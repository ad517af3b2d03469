"""The processes of an agent: found by the identity they inherit, and ended together.

Killing an agent's tmux session ends only what stays in the pane's process group and
answers SIGHUP. Whatever left it (``setsid``, ``nohup cmd &``, a double fork, Codex's
app-server daemon) is re-parented to PID 1 and lives on. Every process an agent starts
inherits ``MNGR_AGENT_ID=<id>`` from the pane's launcher (agents._agent_env), and Linux
shows each process's initial environment in ``/proc/PID/environ`` (to its own user), so
that variable finds them wherever they went. The pane's session and process tree, taken
before the session is killed, is a second signal: it also finds a process that started
with a cleared environment, and it is all there is where /proc is missing (macOS: ``ps``).

Never ended, whatever their environment: this process and its ancestors, the process that
asked (and its ancestors: ``mngr exec AGENT "mngr stop AGENT"`` runs with the agent's
environment), and the host's daemons.
"""

import contextlib
import os
import signal
import subprocess
import time

from . import connections, state, tmux
from .wire import RequestFailed

# What marks a process as an agent's. The helper drops them from its own environment at
# start, so nothing it spawns (the host daemon, a tmux server) is taken for an agent's.
AGENT_VARIABLES = ("MNGR_AGENT_ID", "MNGR_AGENT_NAME", "MNGR_AGENT_DIR")

# How long processes get to exit after SIGTERM, and then after SIGKILL (a process in
# uninterruptible sleep, or freeing a large address space, takes a moment to go).
TERM_GRACE_SECONDS = 2.0
KILL_WAIT_SECONDS = 2.0
POLL_SECONDS = 0.05

_HAS_PROC = os.path.isdir("/proc/self")


def forget_agent_identity(environ=None):
    """Drop the agent variables a helper started by an agent's command inherited."""
    environ = os.environ if environ is None else environ
    for name in AGENT_VARIABLES:
        environ.pop(name, None)


def end_agent(agent_id, session, spare=(), grace=TERM_GRACE_SECONDS):
    """End every process of the agent, then its session, as ``docker stop`` does: SIGTERM
    (the session's processes and those that left it alike), up to ``grace`` seconds for
    them to exit, then the session is killed (SIGHUP to what is left in it) and SIGKILL
    ends the rest.

    ``agent_id`` may be None (a session with no record): then only the session's processes
    are ended. ``spare`` names processes (with their ancestors) that must live: the one
    that asked. A process of the agent that a running agent still uses over a unix socket
    (a shared daemon) is left running, and so is everything below it; the host's event log
    says so. Returns whether the session existed. Raises RequestFailed ("processes_left")
    naming the processes that are still running after SIGKILL.
    """
    grace = min(max(float(grace), 0.0), 3600.0)
    panes = tmux.list_sessions_panes()
    pane = panes.get(session)
    leader = pane.pid if pane is not None and not pane.dead else None
    members = _session_members(leader) if leader else {}
    _drop_other_agents(members, agent_id)
    # The pane's parent is the tmux server, which serves every other agent too.
    server = _parent(leader) if leader else None
    marked = marked_processes()
    running = set(marked.get(other.pid) for name, other in panes.items() if name != session and not other.dead)
    running -= set([None, agent_id])
    # What a stopped agent left running only because this one used it is ended with this one.
    lingering = [pid for pid, owner in marked.items() if owner != agent_id and owner not in running]
    ours = set(pid for pid, owner in marked.items() if owner == agent_id) | set(members)
    for pid in connections.connected(lingering, ours):
        members[pid] = _start_time(pid)
    spared = _spared([*spare, server])
    users = [pid for pid, owner in marked.items() if owner in running]
    shared = connections.connected(_alive(agent_id, members, spared), users)
    if shared:
        state.host_event("agent_processes_kept", agent_id=agent_id or "", session=session, pids=sorted(shared),
                         reason="in use by a running agent")
    _terminate(agent_id, members, spared | _plumbing(leader, members), shared, grace)
    killed = tmux.kill_session(session) or session in panes
    left = _kill(agent_id, members, spared, shared)
    if left:
        raise RequestFailed(
            "processes_left",
            "%d process%s of agent %r still running after SIGKILL: %s; end %s by hand and try again"
            % (
                len(left),
                "" if len(left) == 1 else "es",
                session[len(tmux.SESSION_PREFIX):],
                ", ".join(_describe(pid) for pid in sorted(left)),
                "it" if len(left) == 1 else "them",
            ),
        )
    return killed


def marked_processes():
    """{pid: agent id} of every live process with MNGR_AGENT_ID in its environment (Linux only)."""
    found = {}
    if not _HAS_PROC:
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as handle:
                environ = handle.read()
        except OSError:  # gone, or another user's
            continue
        # An exact entry: the first one, or one right after a separator.
        if environ.startswith(_MARK):
            start = len(_MARK)
        else:
            start = environ.find(b"\0" + _MARK)
            if start < 0:
                continue
            start += len(_MARK) + 1
        end = environ.find(b"\0", start)
        found[int(entry)] = environ[start:end if end >= 0 else len(environ)].decode("utf-8", "replace")
    return found


_MARK = b"MNGR_AGENT_ID="


# -- ending ------------------------------------------------------------------------------


def _terminate(agent_id, members, spared, shared, grace):
    """SIGTERM to every process (and to newcomers forked meanwhile), until none is left or
    ``grace`` seconds went by."""
    signalled = set()
    deadline = time.monotonic() + grace
    while True:
        alive = _alive(agent_id, members, spared, shared)
        if not alive or (time.monotonic() >= deadline and signalled):
            return
        # SIGCONT: a stopped process cannot act on SIGTERM.
        for pid in alive - signalled:
            _signal(pid, signal.SIGTERM)
            _signal(pid, signal.SIGCONT)
        signalled |= alive
        time.sleep(POLL_SECONDS)


def _kill(agent_id, members, spared, shared):
    """SIGKILL to what is left; the pids still alive at the end."""
    alive = _alive(agent_id, members, spared, shared)
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while alive:
        for pid in alive:
            _signal(pid, signal.SIGKILL)
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
        alive = _alive(agent_id, members, spared, shared)
    return alive


def _alive(agent_id, members, spared, shared=()):
    alive = set(pid for pid, owner in marked_processes().items() if agent_id and owner == agent_id)
    if _HAS_PROC:
        alive.update(pid for pid, started in members.items() if _start_time(pid) == started)
    else:
        parents = _ps_parents()  # no start time to check a pid against: trust it
        alive.update(pid for pid in members if pid in parents)
    # A zombie is already dead; its parent (if it is the agent's) goes, and init reaps it.
    alive = set(pid for pid in alive - spared if not _is_zombie(pid))
    if shared:
        # A shared daemon's children work for whoever asked it, whatever they inherited.
        alive = set(pid for pid in alive if not _with_ancestors(pid) & shared)
    return alive


def _signal(pid, number):
    # Gone already, or not ours: reported if it is still there at the end.
    with contextlib.suppress(OSError):
        os.kill(pid, number)


def _describe(pid):
    """``1234 (sleep, uid 1001)``: enough to find it, and to see why it could not be ended."""
    name, uid = "?", "?"
    if _HAS_PROC:
        try:
            with open("/proc/%d/comm" % pid) as handle:
                name = handle.read().strip()
            uid = str(os.stat("/proc/%d" % pid).st_uid)
        except OSError:
            pass
    return "%d (%s, uid %s)" % (pid, name, uid)


# -- who is spared -----------------------------------------------------------------------


def _spared(spare):
    spared = set()
    for pid in [os.getpid(), *spare]:
        if pid:
            spared |= _with_ancestors(pid)
    spared |= _host_daemons()
    return spared


def _with_ancestors(pid):
    chain = set()
    parents = None if _HAS_PROC else _ps_parents()
    while pid and pid not in chain:
        chain.add(pid)
        pid = _parent(pid) if parents is None else parents.get(pid)
    return chain


_SHELLS = frozenset(["sh", "dash", "bash", "zsh", "ash", "busybox"])


def _plumbing(leader, members):
    """What SIGTERM spares at first: the pane's process (mngr's launcher, which records the
    exit status) and the shell it runs the agent's command with, while that shell waits on
    a child. The pane's process leads the terminal's session: once it exits, the kernel
    hangs up (SIGHUP) whatever still runs in the foreground, so an agent still cleaning up
    after SIGTERM would be cut short. Each exits by itself once the agent did."""
    if not leader:
        return set()
    kept = set([leader])
    if not _HAS_PROC:
        return kept
    parents = dict((pid, _parent(pid)) for pid in members)
    for pid, parent in parents.items():
        if parent == leader and _command_name(pid) in _SHELLS and pid in parents.values():
            kept.add(pid)
    return kept


def _command_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _parent(pid):
    if not _HAS_PROC:
        return _ps_parents().get(pid)
    fields = _stat(pid)
    return fields[0] if fields else None


def _host_daemons():
    """Pids of this host dir's daemons (any helper version), from their lock files."""
    directory = os.path.join(state.host_dir(), "host")
    pids = set()
    try:
        names = os.listdir(directory)
    except OSError:
        return pids
    for name in names:
        if name.startswith("daemon-") and name.endswith(".pid"):
            try:
                with open(os.path.join(directory, name)) as handle:
                    pids.add(int(handle.read().split()[0]))
            except (OSError, ValueError, IndexError):
                continue
    return pids


# -- the pane's session and tree -----------------------------------------------------------


def _session_members(leader):
    """{pid: start time} of the pane's session and every process below the pane's process.

    tmux makes each pane's process a session leader, so its session id is its pid.
    """
    if not _HAS_PROC:
        parents = _ps_parents()
        return dict((pid, None) for pid in _descendants(leader, parents))
    parents = {}
    members = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is None:
            continue
        ppid, session, _, started = fields
        parents[int(entry)] = ppid
        if session == leader:
            members[int(entry)] = started
    for pid in _descendants(leader, parents):
        if pid not in members:
            members[pid] = _start_time(pid)
    return dict((pid, started) for pid, started in members.items() if started is not None)


def _drop_other_agents(members, agent_id):
    """Leave out members that belong to another agent (``mngr exec OTHER`` run in the pane)."""
    if not _HAS_PROC:
        return
    own = ("MNGR_AGENT_ID=%s" % agent_id).encode("utf-8") if agent_id else None
    for pid in list(members):
        try:
            with open("/proc/%d/environ" % pid, "rb") as handle:
                entries = handle.read().split(b"\0")
        except OSError:
            continue
        for entry in entries:
            if entry.startswith(b"MNGR_AGENT_ID=") and entry != own:
                del members[pid]
                break


def _descendants(root, parents):
    children = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found = set()
    pending = [root]
    while pending:
        pid = pending.pop()
        if pid in found:
            continue
        found.add(pid)
        pending.extend(children.get(pid, ()))
    return found


def _stat(pid):
    """(parent pid, session id, state, start time) of ``pid``, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            # The command name (field 2) may hold spaces and parentheses: split after it.
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[3]), fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _start_time(pid):
    fields = _stat(pid)
    return fields[3] if fields else None


def _is_zombie(pid):
    if not _HAS_PROC:
        return False
    fields = _stat(pid)
    return fields is not None and fields[2] == b"Z"


def _ps_parents():
    """{pid: parent pid} of every process, from ``ps`` (where there is no /proc)."""
    try:
        listed = subprocess.run(
            ["ps", "-A", "-o", "pid=", "-o", "ppid="], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        ).stdout
    except OSError:
        return {}
    parents = {}
    for line in listed.decode("ascii", "replace").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            parents[int(fields[0])] = int(fields[1])
    return parents
