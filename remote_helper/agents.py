"""Agent lifecycle on this host: records on disk plus tmux sessions, kept consistent.

The order of every change is chosen so that a crash at any point leaves something that
`list` reports and `destroy` can clean up: the record is written before the session is
created, and removed (by an atomic rename out of the way) only after the session is gone.
"""

import contextlib
import os
import re
import sys
import time

from . import (
    agent_config,
    agent_records,
    cli_bundles,
    conversation,
    processes,
    published_urls,
    state,
    tmux,
    trust,
    uploads,
)
from .wire import RequestFailed

OUTPUT_LOG = "output.log"

RUNNING = "RUNNING"
WAITING = "WAITING"
DONE = "DONE"
STOPPED = "STOPPED"
UNKNOWN = "UNKNOWN"

# Variables that describe the helper's own process or session and would confuse the agent.
# The terminal's own variables come from tmux in the pane (unless --env sets them).
_DROPPED_ENV = ("TMUX", "TMUX_PANE", "TERM", "COLORTERM", "MNGR_HELPER_PID", "MNGR_ORIGINAL_UMASK")

# Runs in the agent's pane: replaces the environment the pane inherited from the tmux server
# (whoever started it) with exactly the agent's, keeping what tmux sets for the terminal,
# then becomes the agent's command. Reading it from a 0600 file keeps values such as API keys
# off every command line (ps shows only this program and the file name).
_LAUNCHER = (
    "import json,os,sys\n"
    "with open(sys.argv[1]) as f: spec = json.load(f)\n"
    "env = spec['env']\n"
    "for key in ('TERM', 'COLORTERM', 'TMUX', 'TMUX_PANE'):\n"
    "    if key in os.environ and key not in env: env[key] = os.environ[key]\n"
    "os.umask(spec['umask'])\n"
    "os.execve('/bin/sh', ['/bin/sh', '-c', spec['wrapper'], 'sh', spec['command'], spec['status_file']], env)\n"
)
# Runs the agent's command and keeps its exit status: tmux loses the status of a process
# that exits very soon after respawn-pane started it, so DONE agents report it from here.
_STATUS_KEEPER = '/bin/sh -c "$1"; status=$?; printf "%s\\n" "$status" > "$2"; exit "$status"'
# An extra window's command: no status kept (the agent's state is its own window's).
_WINDOW_RUNNER = 'exec /bin/sh -c "$1"'
# An extra window's name: as an agent's, but starting with a letter (tmux reads digits as an index).
_WINDOW_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
EXIT_STATUS = "exit_status"
STOPPING = "stopping"  # the record's status while a stop or destroy ends its processes


DEFAULT_OUTPUT_LOG_MAX_BYTES = 16 * 1024 * 1024


def output_log_max_bytes():
    """Cap on each agent's output log (``MNGR_OUTPUT_LOG_MAX_BYTES`` on the host)."""
    try:
        return int(os.environ.get("MNGR_OUTPUT_LOG_MAX_BYTES") or DEFAULT_OUTPUT_LOG_MAX_BYTES)
    except ValueError:
        return DEFAULT_OUTPUT_LOG_MAX_BYTES


def _info(record, pane, quiet_seconds, now):
    if pane is None:
        agent_state = STOPPED
    elif pane.dead:
        # A stop or destroy under way ends the agent before its session: its pane is dead
        # for a moment, and the agent did not finish by itself.
        agent_state = STOPPED if record.get("status") == STOPPING else DONE
    else:
        agent_state = RUNNING
    idle_seconds = None
    if pane is not None and pane.activity is not None:
        idle_seconds = max(0.0, now - pane.activity)
        if agent_state == RUNNING and idle_seconds >= quiet_seconds:
            agent_state = WAITING
    return {
        "id": record.get("id", ""),
        "name": record["name"],
        "type": record.get("type", ""),
        "state": agent_state,
        "command": record.get("command", ""),
        "work_dir": record.get("work_dir", ""),
        "created_at": record.get("created_at", ""),
        "labels": dict(record.get("labels") or {}),
        "work_dir_origin": dict(record.get("work_dir_origin") or {}),
        "archived": record.get("archived") is True,
        "pid": pane.pid if pane is not None and not pane.dead else None,
        "exit_status": _exit_status(record, pane) if pane is not None and pane.dead else None,
        "idle_seconds": idle_seconds,
        "problem": None,
        "waiting_reason": None,
        "waiting_detail": "",
        "extra_windows": dict(extra_windows_of(record)),
        "urls": published_urls.urls_of(record.get("id"), record),
    }


def state_info(record, pane, quiet_seconds, now):
    """The agent's listing from its record and pane (None: no session), before its screen
    is read (apply_screen)."""
    return _info(record, pane, quiet_seconds, now)


def _read_screens(infos_and_records):
    """Agents whose type tells what they do from their screen: their state from it.

    Working on a turn is RUNNING; its input box or a dialog is WAITING, with the reason. A
    screen that shows neither (the CLI starting) keeps the state that output activity gave.
    """
    interactive = [(info, record) for info, record in infos_and_records
                   if info["state"] in (RUNNING, WAITING) and isinstance(record.get("interaction"), dict)]
    if not interactive:
        return
    try:
        screens = tmux.capture_panes([tmux.session_name(record["name"]) for _, record in interactive])
    except tmux.TmuxError:
        return
    for info, record in interactive:
        screen = screens.get(tmux.session_name(record["name"]))
        if screen is not None:
            apply_screen(info, record, screen)


def apply_screen(info, record, screen):
    """Set the state of ``info`` (RUNNING or WAITING from output activity) from what the
    agent's screen shows, for a type that tells what it does there."""
    reason, detail = conversation.classify(screen, record["interaction"])
    if reason is not None and reason != "input":
        info["state"], info["waiting_reason"], info["waiting_detail"] = WAITING, reason, detail
    elif conversation.shows_busy(screen, record["interaction"]):
        info["state"] = RUNNING
    elif reason == "input":
        info["state"], info["waiting_reason"] = WAITING, reason


def _exit_status(record, pane):
    if pane.dead_status is not None:
        return pane.dead_status
    try:
        with open(os.path.join(state.agent_dir(record.get("id", "")), EXIT_STATUS)) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _unknown(name, agent_id, problem):
    return {
        "id": agent_id,
        "name": name,
        "type": "",
        "state": UNKNOWN,
        "command": "",
        "work_dir": "",
        "created_at": "",
        "labels": {},
        "archived": False,
        "pid": None,
        "exit_status": None,
        "idle_seconds": None,
        "problem": problem,
        "waiting_reason": None,
        "waiting_detail": "",
        "extra_windows": {},
        "urls": {},
    }


def list_agents(quiet_seconds):
    with state.named_lock(agent_records.VIEW_LOCK):
        panes = tmux.list_sessions_panes()
        found, problems = agent_records.read_all()
    # Listing is the one request every host gets regularly: keep output logs capped here too,
    # for hosts where no host daemon runs.
    rotate_output_logs(output_log_max_bytes(), found)
    now = time.time()
    agents = []
    claimed_sessions = set()
    listed = []
    for record in found.values():
        session = tmux.session_name(record["name"])
        claimed_sessions.add(session)
        listed.append((_info(record, panes.get(session), quiet_seconds, now), record))
    _read_screens(listed)
    agents.extend(info for info, _ in listed)
    for agent_id, problem in problems:
        agents.append(_unknown("", agent_id, problem))
    for session in sorted(panes):
        if session.startswith(tmux.SESSION_PREFIX) and session not in claimed_sessions:
            agents.append(
                _unknown(
                    session[len(tmux.SESSION_PREFIX) :],
                    "",
                    "tmux session %s has no agent record" % session,
                )
            )
    agents.sort(key=lambda agent: (agent["name"], agent["id"]))
    return agents


def recorded(name):
    """The agents recorded under ``name``, from their records alone (FindAgent): no tmux,
    so no state, pid or idle time. A tmux session without a record is not among them."""
    found, _ = agent_records.read_all()
    infos = []
    for record in found.values():
        if record["name"] == name:
            info = _info(record, None, 0.0, 0.0)
            info["state"] = ""
            infos.append(info)
    infos.sort(key=lambda info: info["id"])
    return infos


def agent_info_now(record):
    session = tmux.session_name(record["name"])
    pane = tmux.list_sessions_panes().get(session)
    return _info(record, pane, float("inf"), time.time())


def _check_binary(binary, env):
    if not binary:
        return
    if "/" in binary:
        found = os.path.isfile(binary) and os.access(binary, os.X_OK)
    else:
        found = any(
            os.path.isfile(os.path.join(directory, binary)) and os.access(os.path.join(directory, binary), os.X_OK)
            for directory in env.get("PATH", os.defpath).split(os.pathsep)
            if directory
        )
    if not found:
        raise RequestFailed("missing_binary", "%r was not found on PATH" % binary)


def _agent_env(agent_id, name, extra_env, base_env=None):
    env = dict(os.environ if base_env is None else base_env)
    for key in _DROPPED_ENV:
        env.pop(key, None)
    env["MNGR_HOST_DIR"] = state.host_dir()
    env["MNGR_AGENT_ID"] = agent_id
    env["MNGR_AGENT_NAME"] = name
    env["MNGR_AGENT_DIR"] = state.agent_dir(agent_id)
    env.update(extra_env)
    return env


def _launch(agent_id, record, extra_env, base_env, umask, command):
    env = _agent_env(agent_id, record["name"], _with_own_config(agent_id, extra_env), base_env)
    env["PATH"] = cli_bundles.prefixed_path(record.get("path_dirs"), env.get("PATH"))
    _check_binary(record.get("binary"), env)
    if not os.path.isdir(record["work_dir"]):
        raise RequestFailed("invalid", "work dir %s does not exist on this host" % record["work_dir"])
    output_log = os.path.join(state.agent_dir(agent_id), OUTPUT_LOG)
    os.close(os.open(output_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    launch_path = os.path.join(state.agent_dir(agent_id), "launch.json")
    status_file = os.path.join(state.agent_dir(agent_id), EXIT_STATUS)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(status_file)  # left by an earlier run
    state.atomic_write_json(
        launch_path,
        {
            "env": env,
            "command": command,
            "wrapper": _STATUS_KEEPER,
            "status_file": status_file,
            "umask": state.original_umask() if umask is None else umask,
        },
    )
    session = tmux.session_name(record["name"])
    tmux.new_agent_session(
        session,
        record["work_dir"],
        [sys.executable, "-I", "-S", "-c", _LAUNCHER, launch_path],
        output_log,
    )
    for index, (window, window_command) in enumerate(extra_windows_of(record)):
        window_launch = os.path.join(state.agent_dir(agent_id), "launch-window-%d.json" % index)
        state.atomic_write_json(window_launch, {"env": env, "command": window_command, "wrapper": _WINDOW_RUNNER,
                                                "status_file": "", "umask": state.original_umask() if umask is None
                                                else umask})
        tmux.add_window(session, window, record["work_dir"],
                        [sys.executable, "-I", "-S", "-c", _LAUNCHER, window_launch])


def extra_windows_of(record):
    """The record's extra windows as (name, command), in the order given at create."""
    return agent_records.named_pairs(record, "extra_windows")


def check_extra_windows(windows):
    for name, command in windows.items():
        if not _WINDOW_NAME.match(name) or name == tmux.AGENT_WINDOW:
            raise RequestFailed("invalid", "invalid extra window name %r: lowercase letters, digits and hyphens, "
                                           "starting with a letter, and not %r" % (name, tmux.AGENT_WINDOW))
        if not command.strip():
            raise RequestFailed("invalid", "extra window %r has no command" % name)


def _with_own_config(agent_id, extra_env):
    """The agent's --env values over what its own CLI config dir adds (agent_config.py)."""
    env = agent_config.env(agent_id)
    env.update(extra_env)
    return env


def _read_env(agent_id):
    try:
        env = state.read_json(os.path.join(state.agent_dir(agent_id), "env.json"))
    except FileNotFoundError:
        return {}
    return env if isinstance(env, dict) else {}


def create_agent(request, blob=b""):
    name = request["name"]
    agent_records.check_name(name)
    check_extra_windows(request.get("extra_windows") or {})
    published_urls.check_declared(request.get("urls") or {})
    # A relative work dir means relative to the home dir: the helper's (and the daemon's)
    # own current directory is no place to resolve a user's path against.
    work_dir = os.path.join(os.path.expanduser("~"), os.path.expanduser(request["work_dir"]))
    if not os.path.isdir(work_dir):
        raise RequestFailed("invalid", "work dir %s does not exist on this host" % work_dir)
    if not os.access(work_dir, os.R_OK | os.X_OK):
        # tmux would start the agent wherever it could instead, silently.
        raise RequestFailed("invalid", "work dir %s cannot be entered and read by user %s on this host"
                            % (work_dir, _user_name()))
    env = _agent_env("", name, request["env"], request["base_env"])
    env["PATH"] = cli_bundles.prefixed_path(request.get("path_dirs"), env.get("PATH"))
    _check_binary(request["binary"], env)
    own_config = request.get("agent_config")
    if own_config is not None:
        agent_config.check(own_config)
    session = tmux.session_name(name)
    with state.named_lock("agent-" + name):
        if agent_records.find(name)[1] is not None:
            raise RequestFailed("exists", "an agent named %r already exists on this host" % name)
        if tmux.has_session(session):
            raise RequestFailed(
                "exists",
                "tmux session %s already exists on this host without an agent record" % session,
            )
        agent_id = state.new_agent_id()
        directory = state.agent_dir(agent_id)
        state.ensure_dir(state.agents_dir())
        os.mkdir(directory, 0o700)
        record = {
            "id": agent_id,
            "name": name,
            "type": request["agent_type"],
            "command": request["command"],
            "binary": request["binary"],
            "work_dir": os.path.normpath(work_dir),
            "created_at": state.now_iso(),
            "status": "running",
            "labels": request["labels"],
            "env_keys": sorted(request["env"]),
        }
        if isinstance(request.get("interaction"), dict):
            record["interaction"] = request["interaction"]
        if request.get("work_dir_origin"):
            record["work_dir_origin"] = dict(request["work_dir_origin"])
        if request.get("path_dirs"):
            record["path_dirs"] = [str(directory) for directory in request["path_dirs"]]
        if own_config is not None:
            record["agent_config"] = agent_config.record_entry(own_config)
        if request.get("extra_windows"):
            # [name, command] pairs: the record is written with sorted keys, and the order counts.
            record["extra_windows"] = [[name, command] for name, command in request["extra_windows"].items()]
        if request.get("urls"):
            record["urls"] = [[name, url] for name, url in request["urls"].items()]
        landed = None
        try:
            if request.get("uploads"):
                # First: a destination refused leaves nothing else to take back.
                others = [path for path in _work_dirs_in_use() if path and path != record["work_dir"]]
                landed = uploads.land(request["uploads"], blob, record["work_dir"],
                                      bool(request.get("overwrite_uploads")), others)
            if own_config is not None:
                agent_config.write(agent_id, own_config)
            state.atomic_write_json(os.path.join(directory, "env.json"), request["env"])
            state.atomic_write_json(os.path.join(directory, "record.json"), record)
            events = os.path.join(directory, "events.jsonl")
            state.append_event(events, "created", agent_type=record["type"])
            interaction = record.get("interaction") or {}
            if interaction.get("trusted") and isinstance(interaction.get("trust"), dict):
                trust.trust_work_dir(interaction["trust"], record["work_dir"],
                                     _agent_env(agent_id, name, _with_own_config(agent_id, request["env"]),
                                                request["base_env"]))
            _launch(agent_id, record, request["env"], request["base_env"], request["umask"], record["command"])
        except BaseException:
            tmux.kill_session(session)
            if landed is not None:
                landed.undo()
            _remove_agent_dir(agent_id)
            raise
        if landed is not None:
            landed.commit()
        state.append_event(events, "started")
        return agent_info_now(record)


def write_agent_config(name, spec, path_dirs=None):
    """Write the agent's own CLI config dir again (agent_config.py), trusting its work dir
    there as at create if it was then, and/or (``path_dirs``) the dirs first on its PATH.
    Files change at once, variables and PATH at the next start."""
    if spec is None and path_dirs is None:
        raise RequestFailed("invalid", "WriteAgentConfig: nothing to write")
    if path_dirs is not None and not all(isinstance(d, str) and os.path.isabs(d) for d in path_dirs):
        raise RequestFailed("invalid", "WriteAgentConfig: path_dirs must be absolute paths")
    if spec is not None:
        agent_config.check(spec)
    agent_records.check_name(name)
    with state.named_lock("agent-" + name):
        agent_id, record = agent_records.require(name)
        if path_dirs is not None:
            if path_dirs:
                record["path_dirs"] = list(path_dirs)
            else:
                record.pop("path_dirs", None)
        if spec is None:
            state.atomic_write_json(os.path.join(state.agent_dir(agent_id), "record.json"), record)
            return
        earlier = record.get("agent_config") if isinstance(record.get("agent_config"), dict) else {}
        dropped = earlier.get("files", []) if earlier.get("dir") == spec["dir"] else []
        agent_config.write(agent_id, spec, dropped)
        record["agent_config"] = agent_config.record_entry(spec)
        directory = state.agent_dir(agent_id)
        state.atomic_write_json(os.path.join(directory, "record.json"), record)
        interaction = record.get("interaction") or {}
        if interaction.get("trusted") and isinstance(interaction.get("trust"), dict):
            trust.trust_work_dir(interaction["trust"], record["work_dir"],
                                 _agent_env(agent_id, name, _with_own_config(agent_id, _read_env(agent_id))))
        state.append_event(os.path.join(directory, "events.jsonl"), "agent_config_written",
                           files=sorted(spec.get("files", {})))


def agent_config_state(name, salt):
    """What the agent's own CLI config dir holds, as salted hashes (agent_config.state_of),
    and what its record says it runs."""
    agent_records.check_name(name)
    with state.named_lock("agent-" + name):
        agent_id, record = agent_records.require(name)
        found = agent_config.state_of(agent_id, record, salt)
    found["binary"] = record.get("binary")
    found["path_dirs"] = [str(directory) for directory in record.get("path_dirs") or []]
    if found["path_dirs"] and not found["pending"]:
        # Its process was launched with another CLI first on its PATH than the record's.
        try:
            launched = state.read_json(os.path.join(state.agent_dir(agent_id), "launch.json"))["env"].get("PATH", "")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            launched = None
        if launched is not None:
            first = launched.split(os.pathsep)[:len(found["path_dirs"])]
            found["pending"] = first != found["path_dirs"]
    return found


def stop_agent(name, spare=(), grace=processes.TERM_GRACE_SECONDS):
    """Stop the agent: its session and every process it started (see processes.py)."""
    agent_records.check_name(name)
    with state.named_lock("agent-" + name):
        agent_id, record = agent_records.require(name)
        stop_locked(agent_id, record, spare, grace)
        return agent_info_now(record)


def stop_locked(agent_id, record, spare=(), grace=processes.TERM_GRACE_SECONDS):
    """stop_agent's work, for a caller that holds the agent's lock and read its record."""
    conversation.session_id(agent_id, record)  # a CLI that picks its own: found before it goes
    directory = state.agent_dir(agent_id)
    with _stopping(directory, record):
        processes.end_agent(agent_id, tmux.session_name(record["name"]), spare, grace)
    record["status"] = "stopped"
    state.atomic_write_json(os.path.join(directory, "record.json"), record)
    state.append_event(os.path.join(directory, "events.jsonl"), "stopped")


def start_agent(name, base_env=None, umask=None):
    agent_records.check_name(name)
    with state.named_lock("agent-" + name):
        agent_id, record = agent_records.require(name)
        if record.get("archived") is True:
            # Archived is "kept, out of the way": a start (by hand, a schedule, connect
            # --start) would run an agent that listings hide. Unarchiving is its own step.
            raise RequestFailed("archived", "agent %r is archived (mngr unarchive %s, then start it)" % (name, name))
        session = tmux.session_name(name)
        pane = tmux.list_sessions_panes().get(session)
        if pane is not None and not pane.dead:
            return agent_info_now(record)
        if pane is not None:
            tmux.kill_session(session)
        command = conversation.launch_command(agent_id, record)
        _launch(agent_id, record, _read_env(agent_id), base_env, umask, command)
        record["status"] = "running"
        directory = state.agent_dir(agent_id)
        state.atomic_write_json(os.path.join(directory, "record.json"), record)
        state.append_event(os.path.join(directory, "events.jsonl"), "started")
        return agent_info_now(record)


@contextlib.contextmanager
def _stopping(directory, record):
    """Mark the record while its agent is being ended, so that a listing meanwhile does not
    take the dead pane for an agent that finished (DONE). An end that fails (a process
    survived) leaves the record as it was: the agent is not being stopped any more."""
    path = os.path.join(directory, "record.json")
    noted = record is not None and record.get("status") == "running"
    if noted:
        state.atomic_write_json(path, dict(record, status=STOPPING))
    try:
        yield
    except BaseException:
        if noted:
            state.atomic_write_json(path, record)
        raise


def _remove_agent_dir(agent_id):
    """Move the dir out of sight in one rename, then delete it: listing never sees half a dir."""
    directory = state.agent_dir(agent_id)
    graveyard = os.path.join(state.agents_dir(), ".destroyed-%s-%s" % (agent_id, os.urandom(4).hex()))
    try:
        os.rename(directory, graveyard)
    except FileNotFoundError:
        return
    import shutil

    shutil.rmtree(graveyard, ignore_errors=True)


def destroy_agent(name, spare=(), keep_work_dir=False, grace=processes.TERM_GRACE_SECONDS):
    """End the agent and remove its record; the work dir too if mngr made it (see
    made_work_dir) and no other agent works there, unless ``keep_work_dir``."""
    agent_records.check_name(name)
    with state.named_lock("agent-" + name):
        agent_id, record = agent_records.find(name)
        session = tmux.session_name(name)
        # Raises, keeping the record, if a process survives: a retry still finds them by id.
        with _stopping(state.agent_dir(agent_id) if record is not None else "", record):
            killed = processes.end_agent(agent_id, session, spare, grace)
        if record is None:
            if not killed:
                raise RequestFailed("not_found", "no agent named %r on this host" % name)
            state.host_event("stray_session_destroyed", session=session)
            return
        work_dir = record.get("work_dir")
        _remove_agent_dir(agent_id)
        state.host_event("agent_destroyed", agent_id=agent_id, name=name)
        if isinstance(work_dir, str) and made_work_dir(work_dir) and work_dir not in _work_dirs_in_use():
            if keep_work_dir:
                _note_kept_work_dir(work_dir)
            else:
                remove_made_work_dir(work_dir)
                state.host_event("work_dir_removed", name=name, work_dir=work_dir)


def made_work_dir(path):
    """True for a work dir mngr made: one directly in ``$MNGR_HOST_DIR/work/``."""
    parent = os.path.join(state.host_dir(), "work")
    return os.path.dirname(os.path.normpath(path)) == parent and not os.path.basename(path).startswith(".")


def _work_dirs_in_use():
    found, _ = agent_records.read_all()
    return {record.get("work_dir") for record in found.values()}


KEPT_WORK_DIRS = "kept-work-dirs.json"  # in host/: made work dirs kept by destroy --keep-work-dir


def _note_kept_work_dir(work_dir):
    path = os.path.join(state.host_dir(), "host", KEPT_WORK_DIRS)
    kept = kept_work_dirs()
    if work_dir not in kept:
        state.ensure_dir(os.path.dirname(path))
        state.atomic_write_json(path, sorted(kept | {work_dir}))


def kept_work_dirs():
    try:
        kept = state.read_json(os.path.join(state.host_dir(), "host", KEPT_WORK_DIRS))
    except (OSError, ValueError):
        return set()
    return {path for path in kept if isinstance(path, str)} if isinstance(kept, list) else set()


def remove_made_work_dir(work_dir):
    """Move it out of sight in one rename (a new agent of the same name finds no half of
    it), then delete it."""
    graveyard = os.path.join(os.path.dirname(work_dir), ".removed-%s-%s" % (os.path.basename(work_dir),
                                                                           os.urandom(4).hex()))
    try:
        os.rename(work_dir, graveyard)
    except FileNotFoundError:
        return
    import shutil

    shutil.rmtree(graveyard, ignore_errors=True)


def _user_name():
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())


def send_message(request):
    name = request["name"]
    agent_id, _ = agent_records.require(name)
    session = tmux.session_name(name)
    with state.named_lock("message-" + name):
        # Read again under the lock: a message just before may have found the session id,
        # and a rename (which holds this lock while it renames) may have come first.
        try:
            record = state.read_json(os.path.join(state.agent_dir(agent_id), "record.json"))
        except (OSError, ValueError):
            raise RequestFailed("not_found", "agent %r was destroyed meanwhile" % name) from None
        if record.get("name") != name:
            raise RequestFailed("not_found", "agent %r was renamed to %r meanwhile" % (name, record.get("name")))
        pane = tmux.list_sessions_panes().get(session)
        if pane is None:
            raise RequestFailed("stopped", "agent %r is stopped (start it with: mngr start %s)" % (name, name))
        if pane.dead:
            raise RequestFailed("stopped", "agent %r has exited (state DONE)" % name)
        if isinstance(record.get("interaction"), dict):
            conversation.deliver(session, agent_id, record, request["text"], request["ready_timeout"], name)
        else:
            if request["wait_ready"]:
                _wait_until_ready(session, request)
            tmux.send_text(session, request["text"])
        state.append_event(
            os.path.join(state.agent_dir(agent_id), "events.jsonl"),
            "message_sent",
            bytes=len(request["text"].encode("utf-8")),
        )


def await_input(name, timeout):
    """Return once the agent shows its input box (at once for types that cannot tell)."""
    _, record = agent_records.require(name)
    if isinstance(record.get("interaction"), dict):
        conversation.wait_for_input(tmux.session_name(name), record["interaction"], timeout, name)


def _wait_until_ready(session, request):
    """Wait for the agent's screen to show its ready pattern, or to stop changing."""
    import re

    try:
        pattern = re.compile(request["ready_pattern"]) if request["ready_pattern"] else None
    except re.error as exc:
        raise RequestFailed("invalid", "invalid ready pattern %r: %s" % (request["ready_pattern"], exc)) from exc
    quiet_seconds = request["ready_quiet_seconds"]
    deadline = time.monotonic() + request["ready_timeout"]
    last_screen = None
    last_change = time.monotonic()
    while True:
        pane = tmux.list_sessions_panes().get(session)
        if pane is None or pane.dead:
            raise RequestFailed("stopped", "the agent exited before it was ready for input")
        screen = tmux.capture_pane(session)
        now = time.monotonic()
        if pattern is not None:
            if pattern.search(screen.decode("utf-8", "replace")):
                return
        elif screen != last_screen:
            last_screen = screen
            last_change = now
        elif now - last_change >= quiet_seconds:
            return
        if now >= deadline:
            raise RequestFailed(
                "timeout",
                "agent did not become ready within %.0f s; it is still running" % request["ready_timeout"],
            )
        time.sleep(0.1)


def capture(name, full):
    agent_records.require(name)
    session = tmux.session_name(name)
    if tmux.list_sessions_panes().get(session) is None:
        raise RequestFailed("stopped", "agent %r is stopped (start it with: mngr start %s)" % (name, name))
    return tmux.capture_pane(session, full)


def note_activity(name, source):
    """Record that the user did something with the agent (attached, messaged, ...)."""
    agent_id, _ = agent_records.require(name)
    state.append_event(os.path.join(state.agent_dir(agent_id), "events.jsonl"), "activity", source=source)


def output_log_path(name):
    agent_id, _ = agent_records.require(name)
    return os.path.join(state.agent_dir(agent_id), OUTPUT_LOG)


def rotate_output_logs(max_bytes, agent_ids=None):
    """Keep each agent's output log under ``max_bytes``: the older part moves to output.log.1.

    The pane's writer (``cat >>``) holds the log open with O_APPEND, so the log is copied
    aside and truncated in place rather than renamed; output written between the copy and
    the truncation (microseconds) is the only thing a rotation can lose. ``agent_ids``
    saves listing the agents dir again when the caller has just read it.
    """
    if agent_ids is None:
        try:
            agent_ids = os.listdir(state.agents_dir())
        except FileNotFoundError:
            return
    for entry in agent_ids:
        if entry.startswith("."):
            continue
        path = os.path.join(state.agents_dir(), entry, OUTPUT_LOG)
        try:
            if os.path.getsize(path) <= max_bytes:
                continue
            import shutil

            temp_path = path + ".1.tmp"
            shutil.copyfile(path, temp_path)
            os.replace(temp_path, path + ".1")
            os.truncate(path, 0)
        except OSError:
            continue


def exec_context(name):
    """(work dir, environment) a command run "in the agent" gets: the agent's own."""
    agent_id, record = agent_records.require(name)
    try:
        env = state.read_json(os.path.join(state.agent_dir(agent_id), "launch.json"))["env"]
    except (OSError, ValueError, KeyError, TypeError):
        env = _agent_env(agent_id, name, _with_own_config(agent_id, _read_env(agent_id)))
    return record["work_dir"], dict(env)


def spec(name):
    """The fields a copy of agent ``name`` is created from (AgentSpec)."""
    agent_id, record = agent_records.require(name)
    env = _read_env(agent_id)
    return {
        "agent_type": str(record.get("type", "")),
        "command": str(record.get("command", "")),
        "binary": record.get("binary") if isinstance(record.get("binary"), str) else None,
        "env": {str(key): str(value) for key, value in env.items()},
        "labels": dict(record.get("labels") or {}),
        "work_dir": str(record.get("work_dir", "")),
        "extra_windows": dict(extra_windows_of(record)),
        "urls": dict(published_urls.declared_of(record)),
    }
