"""Thin wrapper over the tmux command line: every call is one tmux client invocation,
except listings in the host daemon, which go through its control-mode client when it has one.
"""

import os
import subprocess

from . import install_hint

SESSION_PREFIX = "mngr-"

# Fields read for every pane in one `list-panes -a` call; tab-separated because mngr's
# session names cannot contain tabs and tmux prints other names verbatim.
_PANE_FORMAT = "\t".join(
    [
        "#{session_name}",
        "#{pane_pid}",
        "#{pane_dead}",
        "#{pane_dead_status}",
        "#{window_activity}",
    ]
)


class TmuxError(Exception):
    pass


class TmuxMissing(TmuxError):
    pass


def _environment():
    env = dict(os.environ)
    # Inside a tmux pane these would make tmux talk to the user's own server and session.
    env.pop("TMUX", None)
    env.pop("TMUX_PANE", None)
    return env


def run(args, input_bytes=None, check=True):
    try:
        completed = subprocess.run(
            ["tmux", *args],
            input=input_bytes,
            stdin=None if input_bytes is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(),
        )
    except FileNotFoundError:
        raise TmuxMissing(install_hint.missing_program("tmux")) from None
    if check and completed.returncode != 0:
        message = completed.stderr.decode("utf-8", "replace").strip() or "exit status %d" % completed.returncode
        raise TmuxError("tmux %s: %s" % (args[0], message))
    return completed


def session_name(agent_name):
    return SESSION_PREFIX + agent_name


def exact_target(session):
    """A target that matches only this exact session name (no prefix or pattern matching)."""
    return "=" + session


def agent_pane_target(session):
    """The agent's pane: the first window's active pane, whatever base-index the user set."""
    return "=%s:^" % session


class Pane(object):
    __slots__ = ("activity", "dead", "dead_status", "pid", "session")

    def __init__(self, fields):
        self.session = fields[0]
        self.pid = _int_or_none(fields[1])
        self.dead = fields[2] == "1"
        self.dead_status = _int_or_none(fields[3])
        self.activity = _int_or_none(fields[4])


def _int_or_none(text):
    try:
        return int(text)
    except ValueError:
        return None


_control_mode = None


def use_control_mode():
    """Send listings through a long-lived control-mode client (for long-lived processes only)."""
    global _control_mode
    from . import tmux_control

    if _control_mode is None and tmux_control.supports_control_flags(_environment()):
        _control_mode = tmux_control.ControlMode(_environment())


def stop_control_mode():
    global _control_mode
    if _control_mode is not None:
        _control_mode.close()
        _control_mode = None


def list_sessions_panes():
    """Return {session name: Pane of its first window's first pane} for every session."""
    control_mode = _control_mode
    if control_mode is not None:
        listed = control_mode.run("list-panes -a -F '%s'" % _PANE_FORMAT)
        if listed is not None:
            return _parse_panes(listed)
    completed = run(["list-panes", "-a", "-F", _PANE_FORMAT], check=False)
    if completed.returncode != 0:
        error = completed.stderr.decode("utf-8", "replace")
        # No server, or one that exited under us (killing its last session ends it). A server
        # with no session at all, as it starts or winds down, answers "no current target".
        gone = ("no server running", "error connecting", "No such file", "server exited", "lost server",
                "no current target")
        if any(phrase in error for phrase in gone):
            return {}
        raise TmuxError("tmux list-panes: %s" % error.strip())
    panes = _parse_panes(completed.stdout)
    if control_mode is not None:
        ours = sorted(session for session in panes if session.startswith(SESSION_PREFIX))
        if ours:
            control_mode.attach(exact_target(ours[0]))
    return panes


def _parse_panes(listed):
    panes = {}
    for line in listed.decode("utf-8", "replace").splitlines():
        fields = line.split("\t")
        if len(fields) != 5:
            continue
        pane = Pane(fields)
        # list-panes orders windows and panes by index, so the first line of a session is its
        # first window's first pane (window 0 unless the user set base-index).
        if pane.session not in panes:
            panes[pane.session] = pane
    return panes


_CLIENT_FORMAT = "#{client_control_mode}\t#{session_name}"


def attached_user_sessions():
    """mngr's sessions with a user's client attached (control-mode clients are not users)."""
    listed = None
    if _control_mode is not None:
        listed = _control_mode.run("list-clients -F '%s'" % _CLIENT_FORMAT)
    if listed is None:
        completed = run(["list-clients", "-F", _CLIENT_FORMAT], check=False)
        if completed.returncode != 0:
            return set()
        listed = completed.stdout
    sessions = set()
    for line in listed.decode("utf-8", "replace").splitlines():
        control, _, session = line.partition("\t")
        if control != "1" and session.startswith(SESSION_PREFIX):
            sessions.add(session)
    return sessions


def has_session(session):
    return run(["has-session", "-t", exact_target(session)], check=False).returncode == 0


def shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def new_agent_session(session, work_dir, argv, output_log, width=200, height=50):
    """Create a detached session whose first window runs ``argv`` and keeps its pane after exit.

    The session first runs a placeholder so that remain-on-exit is set and the pane's output
    is piped to ``output_log`` before the agent's process starts: an agent that exits at
    once still leaves its pane (state DONE) and every byte it printed behind.
    ``=session:`` names the session's only window and pane whatever the user's base-index.
    """
    target = "=%s:" % session
    run(
        [
            "new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), "-c", work_dir, "cat",
            ";", "set-option", "-w", "-t", target, "remain-on-exit", "on",
            ";", "pipe-pane", "-t", target, "exec cat >> " + shell_quote(output_log),
            ";", "respawn-pane", "-k", "-t", target, "-c", work_dir, *argv,
        ]
    )


def rename_session(session, new_session):
    """Rename ``session`` in place (its processes, panes and pipe go on as they are);
    False if there is no such session."""
    if not has_session(session):
        return False
    run(["rename-session", "-t", exact_target(session), new_session])
    return True


AGENT_WINDOW = "agent"  # the agent's window's name in a session that has others


def add_window(session, name, work_dir, argv):
    """Add window ``name`` to the agent's session, running ``argv``, without leaving the
    agent's window; the first window gets the name AGENT_WINDOW so the two are told apart.

    As for the agent's, a placeholder runs until remain-on-exit is set, so a command that
    exits at once leaves its window and what it printed behind.
    """
    first = agent_pane_target(session)
    created = run(["rename-window", "-t", first, AGENT_WINDOW,
                   ";", "new-window", "-d", "-P", "-F", "#{window_id}", "-t", "=%s:" % session, "-n", name,
                   "-c", work_dir, "cat"])
    window = created.stdout.decode("utf-8", "replace").strip()
    run(["set-option", "-w", "-t", window, "remain-on-exit", "on",
         ";", "set-option", "-w", "-t", window, "automatic-rename", "off",
         ";", "respawn-pane", "-k", "-t", window, "-c", work_dir, *argv])


def kill_session(session):
    completed = run(["kill-session", "-t", exact_target(session)], check=False)
    return completed.returncode == 0


def capture_pane(session, full=False, styled=False):
    """The pane's screen as text (with ``full``, the whole scrollback above it too; with
    ``styled``, its colours and attributes as escape sequences)."""
    args = ["capture-pane", "-p", "-t", agent_pane_target(session)]
    if full:
        args[2:2] = ["-S", "-"]
    if styled:
        args.insert(2, "-e")
    return run(args).stdout


def paste_text(session, text, enter=False):
    """Paste ``text`` into the agent's pane as one bracketed paste (then press Enter, in the same
    tmux call, with ``enter``).

    An agent CLI that asked for bracketed paste sees the whole text as one paste whatever its
    length or speed, so no part of it is taken for a keypress (a newline is not Enter), and
    an Enter after the paste's end is a key of its own.
    """
    target = agent_pane_target(session)
    buffer_name = "mngr-msg-" + os.urandom(8).hex()
    run(["load-buffer", "-b", buffer_name, "-"], input_bytes=text.encode("utf-8"))
    pressing = [";", "send-keys", "-t", target, "Enter"] if enter else []
    try:
        run(["if-shell", "-F", "-t", target, "#{pane_in_mode}", "send-keys -t %s -X cancel" % target,
             ";", "paste-buffer", "-d", "-p", "-r", "-b", buffer_name, "-t", target, *pressing])
    except TmuxError:
        run(["delete-buffer", "-b", buffer_name], check=False)  # the pane went away
        raise


def press_enter(session):
    run(["send-keys", "-t", agent_pane_target(session), "Enter"])


def press_keys(session, keys):
    """Press tmux's named ``keys`` ("BSpace", "Enter") in the agent's pane, in one call."""
    if keys:
        run(["send-keys", "-t", agent_pane_target(session), *keys])


def capture_panes(sessions):
    """{session: screen text} for many agents' panes in one tmux call (panes gone are left out)."""
    if not sessions:
        return {}
    separator = "mngr-screen-" + os.urandom(8).hex()
    args = []
    for session in sessions:
        if args:
            args.append(";")
        args += ["display-message", "-p", separator, ";", "capture-pane", "-p", "-t", agent_pane_target(session)]
    # One missing pane makes tmux stop at its command: then each is captured on its own.
    completed = run(args, check=False)
    if completed.returncode != 0:
        screens = {}
        for session in sessions:
            single = run(["capture-pane", "-p", "-t", agent_pane_target(session)], check=False)
            if single.returncode == 0:
                screens[session] = single.stdout.decode("utf-8", "replace")
        return screens
    parts = completed.stdout.decode("utf-8", "replace").split(separator + "\n")[1:]
    return dict(zip(sessions, parts))


def send_text(session, text):
    """Type ``text`` into the agent's pane literally, then press Enter.

    Short printable text goes as literal keys. Anything long or with control characters
    (newlines, tabs, escapes) goes through a named paste buffer, loaded from stdin so no
    command-line limit applies, pasted with -r (newlines stay newlines, not Enter) and -p
    (an agent that asked for bracketed paste sees one paste, not many submitted lines).
    Key names such as C-c or Enter in the text are never interpreted: both ways are literal.
    A trailing ";" would be read by tmux as a command separator, so such text is pasted.
    A pane in copy mode (a user scrolled back) would take the keys itself: leave it first.
    """
    if len(text) > 512 or text.endswith(";") or not all(" " <= char != "\x7f" for char in text):
        paste_text(session, text, enter=True)
        return
    target = agent_pane_target(session)
    run(["if-shell", "-F", "-t", target, "#{pane_in_mode}", "send-keys -t %s -X cancel" % target,
         ";", "send-keys", "-t", target, "-l", "--", text, ";", "send-keys", "-t", target, "Enter"])
