"""Talking to an interactive agent CLI: what its screen says it waits on, where it logs its
conversation, and delivering a message so that it is really submitted.

An agent's record carries its type's ``interaction`` (see the controller's agent_types.py):
regexes for its input box and dialogs, and where its session logs live. A message is pasted
as one bracketed paste, then Enter is pressed, and it counts as delivered only once the
agent's own session log holds it (or its screen shows it queued behind the current step).
"""

import glob
import json
import os
import re
import time

from . import state, tmux
from .wire import RequestFailed

# How long a pasted and submitted message may take to show in the session log.
CONFIRM_SECONDS = 15.0
# Enter is pressed again when a message is not confirmed after these many seconds: a CLI that
# was still starting, or took the first Enter into its paste, submits on the next.
_ENTER_AGAIN_AFTER = (1.5, 4.0)
_POLL_SECONDS = 0.1
_FIRST_POLL_SECONDS = 0.02
_SCREEN_CHECK_SECONDS = 0.25
# How long a paste may take to be drawn before Enter is pressed anyway, and how often the
# screen is looked at meanwhile (each look is a tmux call of a few ms).
_DRAWN_SECONDS = 1.0
_DRAWN_POLL_SECONDS = 0.005
_DETAIL_MAX = 200


def classify(screen, interaction):
    """(reason, detail) for what the screen shows: a dialog's reason, "input" when the input
    box is there, or None while the CLI draws neither (starting, or a screen mngr does not know)."""
    for reason, pattern, detail_pattern in interaction.get("dialogs") or []:
        try:
            if not re.search(pattern, screen, re.M):
                continue
            found = re.search(detail_pattern, screen, re.M) if detail_pattern else None
        except re.error:
            continue
        detail = " ".join(found.group(1).split()) if found and found.groups() else ""
        return reason, detail[:_DETAIL_MAX]
    try:
        if re.search(interaction.get("ready_pattern") or "(?!)", screen, re.M):
            return "input", ""
    except re.error:
        pass
    return None, ""


def shows_busy(screen, interaction):
    try:
        return bool(interaction.get("busy_pattern")) and re.search(interaction["busy_pattern"], screen, re.M) is not None
    except re.error:
        return False


def screen_text(session):
    return tmux.capture_pane(session).decode("utf-8", "replace")


_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
_OTHER_ESCAPE = re.compile(r"\x1b(?:\][^\x07\x1b]*(?:\x07|\x1b\\)|\[[0-9;:?]*[@-~]|.)", re.S)


def _cells(styled):
    """(text, dim) of a screen captured with its styles (capture-pane -e): the text as
    capture-pane -p gives it, and whether each of its characters is drawn dim."""
    text = []
    dims = []
    dim = False
    position = 0
    while position < len(styled):
        escape = styled.find("\x1b", position)
        if escape < 0:
            escape = len(styled)
        run = styled[position:escape]
        text.append(run)
        dims.extend([dim] * len(run))
        if escape == len(styled):
            break
        sgr = _SGR.match(styled, escape)
        if sgr is not None:
            dim = _dim_after(sgr.group(1), dim)
            position = sgr.end()
            continue
        other = _OTHER_ESCAPE.match(styled, escape)
        position = other.end() if other is not None else escape + 1
    return "".join(text), dims


def _dim_after(parameters, dim):
    codes = parameters.replace(":", ";").split(";") if parameters else ["0"]
    index = 0
    while index < len(codes):
        code = codes[index]
        if code in ("", "0", "22"):
            dim = False
        elif code == "2":
            dim = True
        elif code in ("38", "48", "58"):  # a colour: 5;N or 2;R;G;B follow, not attributes
            index += {"5": 2, "2": 4}.get(codes[index + 1] if index + 1 < len(codes) else "", 0)
        index += 1
    return dim


def typed_draft(styled, interaction):
    """What someone typed into the agent's input box and has not sent, on a screen captured
    with its styles: the rest of the line where its ``ready_pattern`` last matches (the box
    is drawn below the conversation, whose past prompts may look alike), leaving out what is
    drawn dim, as both CLIs draw an empty box's placeholder ("Ask Codex to do anything").
    A draft whose first line is empty is not seen."""
    text, dims = _cells(styled)
    return _box_text(text, dims, interaction)


def _box_text(text, dims, interaction):
    """typed_draft's reading of a screen's ``text``; ``dims`` None: nothing on it is dim."""
    try:
        matches = list(re.finditer(interaction.get("ready_pattern") or "(?!)", text, re.M))
    except re.error:
        return ""
    if not matches:
        return ""
    start, end = matches[-1].span()
    while end > start and text[end - 1] == "\n":
        end -= 1
    line_end = text.find("\n", end)
    if line_end < 0:
        line_end = len(text)
    if dims is None:
        return text[end:line_end].strip()
    return "".join(character for character, dim in zip(text[end:line_end], dims[end:line_end]) if not dim).strip()


def refuse_a_draft(session, interaction, name):
    """A message pasted onto someone's unsent text would go as one with it: mngr neither adds
    to that text nor clears it."""
    draft = _box_now(session, interaction)
    if draft:
        shown = draft if len(draft) <= 40 else draft[:39] + "\u2026"
        raise RequestFailed(
            "draft",
            "agent %r has text typed into its input box and not sent (%r), which mngr neither adds to "
            "nor clears: send or clear it with `mngr connect %s`" % (name, shown, name),
        )


def describe_wait(reason, detail):
    return reason + (": " + detail if detail else "")


def _launch_env(agent_id):
    try:
        env = state.read_json(os.path.join(state.agent_dir(agent_id), "launch.json"))["env"]
    except (OSError, ValueError, KeyError, TypeError):
        return dict(os.environ)
    return env if isinstance(env, dict) else dict(os.environ)


def config_dir(agent_id, interaction):
    """The CLI's config dir as the agent sees it (its own environment and home)."""
    env = _launch_env(agent_id)
    override = interaction.get("config_dir_env")
    if override and env.get(override):
        return env[override]
    directory = interaction.get("config_dir") or ""
    if directory.startswith("~"):
        home = env.get("HOME") or os.path.expanduser("~")
        directory = home + directory[1:]
    return directory


def _claimed_session_ids(agent_id):
    """Session ids the other agents on this host already have."""
    claimed = set()
    try:
        entries = os.listdir(state.agents_dir())
    except OSError:
        return claimed
    for entry in entries:
        if entry == agent_id or entry.startswith("."):
            continue
        try:
            record = state.read_json(os.path.join(state.agents_dir(), entry, "record.json"))
            claimed.add(record["interaction"]["session_id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return claimed


def _discover_session_id(agent_id, record, since, forms):
    """The session id of a CLI that picks its own: the newest log written since ``since`` that
    names the agent's work dir (and holds ``forms``, a message just sent) and that no other
    agent here has. Its processes' open files cannot tell: Codex writes every session of a
    user through one shared daemon."""
    interaction = record["interaction"]
    try:
        id_pattern = re.compile(interaction.get("session_file") or "(?!)")
    except re.error:
        return ""
    pattern = os.path.join(glob.escape(config_dir(agent_id, interaction)),
                           interaction.get("session_log", "").replace("{session_id}", "*"))
    work_dir = json.dumps(record.get("work_dir", ""), ensure_ascii=False)[1:-1].encode("utf-8")
    claimed = _claimed_session_ids(agent_id)
    candidates = []
    for path in glob.glob(pattern):
        found = id_pattern.search(path)
        if found and found.group(1) not in claimed and _mtime(path) >= since:
            candidates.append((_mtime(path), path, found.group(1)))
    for _, path, session in sorted(candidates, reverse=True):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        if work_dir in data and (not forms or any(form in data for form in forms)):
            return session
    return ""


def session_id(agent_id, record, since=None, forms=()):
    """The agent's session id: chosen at create, or found once its CLI picked one (then kept).

    Without ``since``, logs written since the agent's current run began are looked at."""
    interaction = record.get("interaction") or {}
    known = interaction.get("session_id") or ""
    if known or not interaction.get("session_file"):
        return known
    if since is None:
        since = _launched_at(agent_id)
    found = _discover_session_id(agent_id, record, since, forms)
    if found:
        interaction["session_id"] = found
        _remember_session_id(agent_id, found)
    return found


def _launched_at(agent_id):
    return _mtime(os.path.join(state.agent_dir(agent_id), "launch.json"))


def _remember_session_id(agent_id, found):
    path = os.path.join(state.agent_dir(agent_id), "record.json")
    try:
        record = state.read_json(path)
    except (OSError, ValueError):
        return
    if isinstance(record, dict) and isinstance(record.get("interaction"), dict):
        record["interaction"]["session_id"] = found
        state.atomic_write_json(path, record)


def session_log_path(agent_id, record, since=None, forms=()):
    """Path of the agent's own session log, or None if it has none (yet)."""
    interaction = record.get("interaction") or {}
    session = session_id(agent_id, record, since, forms)
    if not session or not interaction.get("session_log"):
        return None
    pattern = os.path.join(glob.escape(config_dir(agent_id, interaction)),
                           interaction["session_log"].replace("{session_id}", glob.escape(session)))
    found = glob.glob(pattern)
    return max(found, key=_mtime) if found else None


def _mtime(path):
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def launch_command(agent_id, record):
    """The command line a restart runs: the conversation resumed when there is one to resume."""
    interaction = record.get("interaction") or {}
    if not interaction:
        return record["command"]
    session = session_id(agent_id, record)
    if session and interaction.get("resume_command") and session_log_path(agent_id, record):
        return interaction["resume_command"].replace("{session_id}", session)
    return interaction.get("restart_command") or record["command"]


_PROBE_CHARACTERS = 60


def _json_forms(text):
    """Byte strings one of which the session log holds once the agent took ``text``: a JSON
    string value ("text" or "content", as both CLIs write their user records) that begins
    with the text's start, and ends there when the text is short. The CLI may have trimmed
    the text's surrounding white space. Both write UTF-8 JSON without escaping non-ASCII
    characters; Python-style escaping is looked for as well."""
    forms = []
    for variant in {text, text.strip()}:
        probe = variant[:_PROBE_CHARACTERS]
        closing = '"' if len(variant) <= _PROBE_CHARACTERS else ""
        for encoded in (json.dumps(probe, ensure_ascii=False)[1:-1], json.dumps(probe)[1:-1]):
            for key in ("text", "content"):
                for separator in (":", ": "):
                    forms.append(('"%s"%s"%s%s' % (key, separator, encoded, closing)).encode("utf-8"))
    return sorted(set(forms))


def _queued_pattern(text):
    """Codex shows a message waiting for the current step as an indented "\u21b3 TEXT" line."""
    return re.compile(r"^\s*\u21b3 " + re.escape(text.strip().splitlines()[0][:30] if text.strip() else text), re.M)


def _log_size(path):
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _logged_since(path, offset, forms):
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except (OSError, TypeError):
        return False
    return any(form in data for form in forms)


def wait_for_input(session, interaction, timeout, name):
    """Wait until the agent shows its input box, and return that screen; refuse at once
    when it holds a dialog."""
    deadline = time.monotonic() + timeout
    while True:
        pane = tmux.list_sessions_panes().get(session)
        if pane is None or pane.dead:
            raise RequestFailed("stopped", "agent %r exited before it was ready for input" % name)
        screen = screen_text(session)
        reason, detail = classify(screen, interaction)
        if reason == "input":
            return screen
        if reason is not None:
            raise RequestFailed(
                "dialog",
                "agent %r is waiting on a %s dialog (%s), which mngr does not answer for you: "
                "answer it with `mngr connect %s`" % (name, reason, detail or "no detail", name),
            )
        if time.monotonic() >= deadline:
            raise RequestFailed(
                "timeout", "agent %r did not show its input box within %.0f s; it is still running" % (name, timeout)
            )
        time.sleep(_POLL_SECONDS)


def _deliver_without_log(session, interaction, text, name, before):
    """For a CLI with no session log to look in: Enter must at least change what it shows
    (pressed once more if the first did nothing); the text cannot be checked."""
    pasted = _paste_drawn(session, text, before)  # so that what Enter changes is told from the paste
    for wait in _ENTER_AGAIN_AFTER:
        tmux.press_enter(session)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            screen = screen_text(session)
            if screen != pasted:
                return "submitted"
            time.sleep(_POLL_SECONDS)
    reason, detail = classify(screen_text(session), interaction)
    raise RequestFailed("not_submitted", "the message was typed into %r but its screen did not change when Enter "
                        "was pressed (it shows %s)" % (name, describe_wait(reason or "nothing mngr knows", detail)))


def _paste_drawn(session, text, before):
    """Paste ``text`` and return the screen once the CLI has drawn it (it differs from
    ``before``, the screen before the paste), or after ``_DRAWN_SECONDS``, for Enter to be
    pressed then.

    An Enter that reaches a CLI together with the text is read as part of the paste by one
    that has not asked for bracketed paste yet (Claude Code just after it started or
    resumed): it becomes a newline in the input box, and the message goes only with the next
    Enter, ending in that newline. Once the text is drawn, the paste is over."""
    tmux.paste_text(session, text)
    deadline = time.monotonic() + _DRAWN_SECONDS
    while True:
        drawn = screen_text(session)
        if drawn != before or time.monotonic() >= deadline:
            return drawn
        time.sleep(_DRAWN_POLL_SECONDS)


# A message that is one slash command ("/compact", "/review src/app.py"): the CLI runs it
# itself. Claude logs a command it ran as a record of its own; Codex does not log it at all.
_COMMAND = re.compile(r"/[A-Za-z][\w:-]*(?=\s|$)")
# A command gone from the input box is taken once the CLI has not said, in this long, that
# it does not know it (it may clear the box a moment before saying so).
_COMMAND_SETTLE_SECONDS = 0.3
_COMMAND_CHECK_SECONDS = 0.05


def command_word(text):
    """The command that ``text`` is, when it is one slash command on one line, else None."""
    stripped = text.strip()
    if "\n" in stripped:
        return None
    found = _COMMAND.match(stripped)
    return found.group(0) if found else None


class _CommandWatch(object):
    """Whether the CLI took a slash command: it left the input box, where it was seen, and
    the CLI does not say it has no such command (``unknown_command``, a regex on its screen).
    Codex leaves a command it does not know in the box: that text, mngr's own, is removed."""

    def __init__(self, session, interaction, name, command, text):
        self.session = session
        self.interaction = interaction
        self.name = name
        self.command = command
        self.text = text.strip()
        self.seen = False
        self.left_at = None

    def note(self, screen):
        """Look at a screen without styles (nothing on it taken for dim)."""
        if self._in_box(_box_text(screen, None, self.interaction)):
            self.seen = True

    def taken(self):
        """True once taken; raises RequestFailed if the CLI says it has no such command."""
        text, dims = _cells(tmux.capture_pane(self.session, styled=True).decode("utf-8", "replace"))
        in_box = _box_text(text, dims, self.interaction)
        said = self._unknown(text)
        if said is not None:
            taken_back = "; taken back out of its input box" if in_box == self.text and _take_back(
                self.session, self.interaction, self.text) else ""
            raise RequestFailed("unknown_command", "%r has no command %s (it says: %s)%s"
                                % (self.name, self.command, said, taken_back))
        if self._in_box(in_box):
            self.seen = True
            self.left_at = None
            return False
        if not self.seen:
            return False
        if self.left_at is None:
            self.left_at = time.monotonic()
        return time.monotonic() - self.left_at >= _COMMAND_SETTLE_SECONDS

    def _in_box(self, box):
        """Whether ``box`` holds the command: all of it, or the start of it (a screen captured
        while the CLI was drawing the paste)."""
        return bool(box) and (self.text.startswith(box) or box == self.command or box.startswith(self.command + " "))

    def _unknown(self, screen):
        try:
            found = list(re.finditer(self.interaction.get("unknown_command") or "(?!)", screen, re.M))
        except re.error:
            return None
        for match in found:
            said = match.group(0)
            if re.search(re.escape(self.command) + r"(?![\w:-])", said):  # /foo, not /foobar
                return " ".join(said.split())[:_DETAIL_MAX]
        return None


def _take_back(session, interaction, text):
    """Remove ``text``, a line mngr typed that the CLI did not take, when the input box holds
    exactly it; whether the box was seen empty then. (Codex, giving back a command it does
    not know, puts the cursor at the start: End goes to the text's end first.)"""
    line = text.strip()
    if not line or "\n" in line or _box_now(session, interaction) != line:
        return False
    tmux.press_keys(session, ["End"] + ["BSpace"] * len(line))
    deadline = time.monotonic() + _DRAWN_SECONDS
    while _box_now(session, interaction):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_DRAWN_POLL_SECONDS * 4)
    return True


def _box_now(session, interaction):
    return typed_draft(tmux.capture_pane(session, styled=True).decode("utf-8", "replace"), interaction)


def deliver(session, agent_id, record, text, ready_timeout, name):
    """Paste ``text``, submit it, and return once the agent's session log holds it.

    Returns "submitted", or "queued" when the agent is busy and shows the message waiting for
    its current step (Codex logs such a message only once it takes it)."""
    interaction = record["interaction"]
    ready_screen = wait_for_input(session, interaction, ready_timeout, name)
    refuse_a_draft(session, interaction, name)
    if not interaction.get("session_log"):
        return _deliver_without_log(session, interaction, text, name, ready_screen)
    path = session_log_path(agent_id, record)
    offset = _log_size(path)
    forms = _json_forms(text)
    queued = _queued_pattern(text)
    command = command_word(text)
    watch = None
    if command is not None:
        forms = [*forms, ("<command-name>%s</command-name>" % command).encode("utf-8")]
        watch = _CommandWatch(session, interaction, name, command, text)
    sent_at = time.time() - 1.0  # file times are coarser than this clock on some filesystems
    drawn = _paste_drawn(session, text, ready_screen)
    if watch is not None:
        watch.note(drawn)
    tmux.press_enter(session)
    next_command_check = time.monotonic()
    started = time.monotonic()
    enters_left = list(_ENTER_AGAIN_AFTER)
    next_screen_check = started
    while True:
        if path is None:
            path = session_log_path(agent_id, record, sent_at, forms)  # created by this first message
            offset = 0
        if path is not None and _logged_since(path, offset, forms):
            return "submitted"
        elapsed = time.monotonic() - started
        if watch is not None and time.monotonic() >= next_command_check:
            next_command_check = time.monotonic() + _COMMAND_CHECK_SECONDS
            if watch.taken():
                return "submitted"
        # The log is a file read; the screen costs tmux calls (CPU the agent wants just now).
        if time.monotonic() >= next_screen_check:
            next_screen_check = time.monotonic() + _SCREEN_CHECK_SECONDS
            pane = tmux.list_sessions_panes().get(session)
            if pane is None or pane.dead:
                raise RequestFailed("stopped", "agent %r exited before it took the message" % name)
            screen = screen_text(session)
            if queued.search(screen):
                return "queued"
            if elapsed >= CONFIRM_SECONDS:
                reason, detail = classify(screen, interaction)
                waiting = "; it shows " + describe_wait(reason, detail) if reason not in (None, "input") else ""
                if reason == "input" and _take_back(session, interaction, text):
                    waiting = "; it was taken back out of the input box"
                raise RequestFailed(
                    "not_submitted",
                    "the message was typed into %r but its session log does not show it taken after %.0f s%s"
                    % (name, CONFIRM_SECONDS, waiting),
                )
            if enters_left and elapsed >= enters_left[0]:
                enters_left.pop(0)
                if classify(screen, interaction)[0] == "input":
                    tmux.press_enter(session)
        # Taken messages show within a few hundred ms: look often at first, then less.
        time.sleep(_FIRST_POLL_SECONDS if elapsed < 1.0 else _POLL_SECONDS)
