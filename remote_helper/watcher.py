"""The idle watcher: a thread of the host daemon that stops the host when nothing happens.

Every poll it measures what requests cannot record themselves (agent output, the CPU
of each agent's process tree, attached tmux clients, SSH sessions with a terminal,
live agent processes), records it under ``host/activity/``, and decides:

- idle shutdown off (no timeout, or mode "disabled"): nothing to do;
- the newest counted activity is older than the timeout: the host is idle, act;
- agents ran while this watcher watched, and none has for the stop grace (all stopped,
  exited or destroyed): act;
- otherwise: not idle, and why.

After acting, the watcher waits until an agent runs again. A host that comes back up (a
reboot) with no agent running is judged by the idle timeout alone, counted from its boot
or later activity, never by the stop grace: the first `mngr list` after a reboot must not
power the machine off again 30 seconds later.

Acting means: stop every running agent, then run the host's idle command if it has one
(for example a power-off the user configured). A state-changing request in progress
holds the operation lock (shared); the watcher acts only when it can take it
exclusively, so a create or message is never cut in half. The lock is an flock: a helper
that dies releases it, so a crashed controller cannot postpone shutdown forever.

Each decision that differs from the previous one is logged to ``host/watcher.jsonl``;
each shutdown also to ``host/shutdown.json``, which `mngr list` reports. Each poll also
notes agents' state transitions in their event logs (events.py), so they are there for
`mngr events` to read even when nobody was following.

One watcher per host dir, whatever the helper version: the daemon that holds
``host/watcher.lock`` watches. Every daemon writes ``host/watcher.claim`` when it starts;
a watcher of another helper version hands over while that claimant is alive, so the most
recently started version (usually the newest mngr in use) watches. A host dir whose
agents live in several tmux servers (daemons with different TMUX_TMPDIR) cannot be
judged from one of them: the watcher then holds back and says so in its log.
"""

import contextlib
import errno
import fcntl
import json
import os
import subprocess
import threading
import time

from . import agent_records, agents, daemon_address, events, idle, operation_lock, state, tmux

DISABLED_POLL_SECONDS = 5.0
MAX_POLL_SECONDS = 5.0
MIN_POLL_SECONDS = 0.5
COMMAND_TIMEOUT_SECONDS = 120.0
LOG_MAX_BYTES = 1024 * 1024
CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))  # /proc/*/stat counts CPU in these


def poll_seconds(settings):
    if not idle.enabled(settings):
        return DISABLED_POLL_SECONDS
    shortest = min(settings["timeout"], settings["stop_grace"] or settings["timeout"])
    return max(MIN_POLL_SECONDS, min(MAX_POLL_SECONDS, shortest / 6.0))


def boot_time():
    """When this host (or container: its first process) came up, as a Unix time."""
    booted = None
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith("btime "):
                    booted = float(line.split()[1])
                    break
        with open("/proc/1/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        # Field 22, starttime, in clock ticks since boot.
        return booted + int(fields[19]) / CLOCK_TICKS
    except (OSError, ValueError, IndexError, TypeError):
        return booted


def _children(pid):
    """Direct children of ``pid`` (all its threads' children)."""
    found = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as handle:
                found.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def _cpu_seconds(pid):
    """CPU of ``pid`` and of its children it has reaped; None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    except (ValueError, IndexError):
        return None


def tree_cpu_seconds(root):
    """CPU used so far by ``root`` and every process below it (reaped ones included)."""
    total = 0.0
    pending = [root]
    seen = set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        used = _cpu_seconds(pid)
        if used is None:
            continue
        total += used
        pending.extend(_children(pid))
    return total


def ssh_terminal_sessions():
    """SSH sessions with a terminal, of this user: sshd titles them "sshd: USER@pts/N"."""
    count = 0
    uid = os.getuid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat("/proc/" + entry).st_uid != uid:
                continue
            with open("/proc/%s/comm" % entry, "rb") as handle:
                if not handle.read().startswith(b"sshd"):
                    continue
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                title = handle.read()
        except OSError:
            continue
        if b"@pts/" in title and title.startswith(b"sshd"):
            count += 1
    return count


class Watcher(object):
    def __init__(self, helper_hash):
        self._helper_hash = helper_hash
        self._stop = threading.Event()
        self._lock_fd = None
        self._started = time.time()
        self._cpu = {}  # agent id -> (cpu seconds, monotonic time)
        self._last_output = 0.0
        self._boot_checked = False
        self._none_alive_since = None  # when agents were last seen all stopped (None: some run)
        self._seen_alive = False  # an agent ran while this watcher watched
        self._acted = None  # decided on the first poll, from host/shutdown.json
        self._last_logged = None
        self.complete = True
        self.watching = False
        self.needed = False  # the daemon must stay up for this watcher

    # -- the thread ---------------------------------------------------------------------

    def start(self):
        self._claim()
        thread = threading.Thread(target=self._run, name="idle-watcher")
        thread.daemon = True
        thread.start()

    def stop(self):
        self._stop.set()

    def _run(self):
        while not self._stop.is_set():
            settings = idle.read_settings()
            changed = _settings_stamp()
            try:
                self._step(settings)
                if self._lock_fd is not None:  # the one watcher of this host dir
                    events.noter().note(events.quiet_seconds())
            except Exception:
                import traceback

                traceback.print_exc()
            # Sleep until the next poll, but look again at once when the settings change
            # (a new timeout must not wait out the 5 s poll of a host where it was off).
            deadline = time.monotonic() + poll_seconds(settings)
            while not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._stop.wait(min(MIN_POLL_SECONDS, remaining))
                if _settings_stamp() != changed:
                    break
        self._release()

    def _step(self, settings):
        if not self._hold_lock():
            self.needed = False
            return
        if not idle.enabled(settings):
            self.needed = False
            self._log_decision("disabled", "idle shutdown is off on this host")
            return
        if self._acted is None:
            self._acted = _stopped_since_last_start()
        self.needed = not self._acted
        others = _other_tmux_servers()
        if others:
            self._log_decision(
                "paused",
                "agents of this host dir may live in other tmux servers (daemons %s): not judging idleness"
                % ", ".join(str(pid) for pid in others),
            )
            return
        decision, reason = self._evaluate(settings)
        if decision != "act":
            return
        with operation_lock.exclusive(0) as taken:
            if not taken:
                self._log_decision("postponed", "would stop (%s), but a mngr operation is in progress" % reason)
                return
            # Again under the lock: a request that finished meanwhile may have changed things.
            decision, reason = self._evaluate(settings)
            if decision == "act":
                self._act(settings, reason)

    def _evaluate(self, settings):
        now = time.time()
        alive = self.measure(settings, now)
        if alive:
            self._none_alive_since = None
            self._seen_alive = True
            self._acted = False  # something runs (again): watch afresh
        elif not self._seen_alive:
            # An agent created or started since this watcher began counts as having run,
            # even if it ended between two polls.
            started = idle.last_activity(("create", "start")).values()
            self._seen_alive = any(when > self._started for when in started)
        elif self._none_alive_since is None:
            self._none_alive_since = now
        status = idle.status(now, settings)
        idle_seconds = status["idle_seconds"]
        if idle_seconds is None:
            idle_seconds = now - self._started  # nothing counted has happened: start the clock
        if self._acted:
            self._log_decision("stopped", "host stopped; waiting for an agent to run again")
            return "wait", ""
        if not self.complete:
            return "wait", ""  # an agent's CPU has one sample only: look again next poll
        if self._seen_alive and not alive and now - self._none_alive_since >= settings["stop_grace"]:
            return "act", "no agent running for %.0f s" % (now - self._none_alive_since)
        if idle_seconds >= settings["timeout"]:
            agent = status["last_activity_agent"]
            return "act", "idle for %.0f s (timeout %.0f s); last activity: %s%s" % (
                idle_seconds,
                settings["timeout"],
                status["last_activity"] or "none",
                " (%s)" % agent if agent else "",
            )
        self._log_decision(
            "active",
            "not idle: last activity %s %.0f s ago (timeout %.0f s)"
            % (status["last_activity"] or "none", idle_seconds, settings["timeout"]),
            key=("active", status["last_activity"]),
        )
        return "wait", ""

    # -- one version watches --------------------------------------------------------------

    def _claim(self):
        path = os.path.join(state.ensure_dir(os.path.join(state.host_dir(), "host")), "watcher.claim")
        with contextlib.suppress(OSError):
            state.atomic_write_bytes(path, ("%s %d\n" % (self._helper_hash, os.getpid())).encode("ascii"))

    def _claimed_by_another(self):
        path = os.path.join(state.host_dir(), "host", "watcher.claim")
        try:
            with open(path) as handle:
                claimant, pid = handle.read().split()
            pid = int(pid)
        except (OSError, ValueError):
            return False
        if claimant == self._helper_hash or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except OSError as exc:
            return exc.errno == errno.EPERM
        return True

    def _hold_lock(self):
        if self._lock_fd is not None:
            if self._claimed_by_another():
                self._log_decision("handed-over", "a daemon of another helper version watches now")
                self._release()
                return False
            return True
        if self._claimed_by_another():
            return False
        path = os.path.join(state.ensure_dir(os.path.join(state.host_dir(), "host")), "watcher.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if not operation_lock.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, ("%d %s\n" % (os.getpid(), self._helper_hash)).encode("ascii"))
        self._lock_fd = fd
        self.watching = True
        self._log("watching", message="watcher started (pid %d)" % os.getpid())
        return True

    def _release(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.watching = False

    # -- measuring ------------------------------------------------------------------------

    def measure(self, settings, now):
        """Record the measured sources; return the names of agents whose process is alive.

        Sets ``self.complete`` to False when some agent's CPU could not be judged yet (its
        first sample): no decision to stop is taken on such a poll.
        """
        sources = settings["sources"]
        self.complete = True
        records, _ = agent_records.read_all()
        panes = tmux.list_sessions_panes()
        alive = []
        newest_output, output_agent = self._last_output, ""
        for agent_id, record in records.items():
            pane = panes.get(tmux.session_name(record["name"]))
            if pane is not None and not pane.dead:
                alive.append(record["name"])
                judged = "cpu" not in sources or pane.pid is None or self._measure_cpu(
                    agent_id, record["name"], pane.pid, settings["cpu_threshold"], now
                )
                self.complete = self.complete and judged
            else:
                self._cpu.pop(agent_id, None)
            try:
                written = os.stat(os.path.join(state.agent_dir(agent_id), agents.OUTPUT_LOG)).st_mtime
            except OSError:
                continue
            if written > newest_output:
                newest_output, output_agent = written, record["name"]
        if newest_output > self._last_output:
            idle.note("output", output_agent, newest_output)
            self._last_output = newest_output
        if "process" in sources and alive:
            idle.note("process", alive[0], now)
        if "user" in sources:
            attached = tmux.attached_user_sessions()
            if attached:
                idle.note("user", sorted(attached)[0][len(tmux.SESSION_PREFIX):], now)
        if "ssh" in sources and ssh_terminal_sessions():
            idle.note("ssh", "", now)
        if not self._boot_checked:
            self._boot_checked = True
            booted = boot_time()
            seen = idle.last_activity(("boot",)).get("boot")
            if booted is not None and (seen is None or seen < booted - 1):
                idle.note("boot", "", booted)
        return alive

    def _measure_cpu(self, agent_id, name, pid, threshold, now):
        """Note CPU activity; return False if this was the first sample (nothing known yet)."""
        used = tree_cpu_seconds(pid)
        moment = time.monotonic()
        previous = self._cpu.get(agent_id)
        self._cpu[agent_id] = (used, moment)
        if previous is None or moment <= previous[1]:
            return False
        if (used - previous[0]) / (moment - previous[1]) > threshold:
            idle.note("cpu", name, now)
        return True

    # -- acting ---------------------------------------------------------------------------

    def _act(self, settings, reason):
        self._log("stopping", message="stopping the host: " + reason)
        stopped, failures = self._stop_agents()
        record = {
            "time": state.now_iso(),
            "at": time.time(),
            "reason": reason,
            "stopped_agents": stopped,
            "failures": failures,
            "command": settings["command"],
            "command_status": "running" if settings["command"] else None,
        }
        # Recorded before the command runs: a power-off may not let us write afterwards.
        self._record_shutdown(record)
        if settings["command"]:
            record["command_status"] = self._run_command(settings["command"])
            self._record_shutdown(record)
        self._log("shutdown", **record)
        self._acted = True
        self.needed = False

    def _record_shutdown(self, record):
        with contextlib.suppress(OSError):
            state.atomic_write_json(idle.shutdown_path(), record)

    def _stop_agents(self):
        """Stop every agent whose process runs; exited ones keep their last screen."""
        stopped, failures = [], []
        records, _ = agent_records.read_all()
        panes = tmux.list_sessions_panes()
        for record in records.values():
            pane = panes.get(tmux.session_name(record["name"]))
            if pane is None or pane.dead:
                continue
            try:
                agents.stop_agent(record["name"])
                stopped.append(record["name"])
            except Exception as exc:
                failures.append("%s: %s" % (record["name"], exc))
        return sorted(stopped), failures

    def _run_command(self, command):
        log = os.path.join(state.host_dir(), "host", "idle-command.log")
        try:
            with open(log, "ab") as output:
                completed = subprocess.run(
                    ["/bin/sh", "-c", command],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=COMMAND_TIMEOUT_SECONDS,
                    start_new_session=True,
                )
            return completed.returncode
        except subprocess.TimeoutExpired:
            return "timed out after %.0f s" % COMMAND_TIMEOUT_SECONDS
        except OSError as exc:
            return str(exc)

    # -- the decision log -----------------------------------------------------------------

    def _log_decision(self, decision, message, key=None):
        """Log a decision unless it is the same as the previous one."""
        key = key or (decision, message)
        if key == self._last_logged:
            return
        self._last_logged = key
        self._log(decision, message=message)

    def _log(self, decision, **fields):
        path = idle.watcher_log_path()
        with contextlib.suppress(OSError):
            if os.path.getsize(path) > LOG_MAX_BYTES:
                os.replace(path, path + ".1")
        entry = {"time": state.now_iso(), "decision": decision}
        entry.update(fields)
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))
            finally:
                os.close(fd)


def _settings_stamp():
    try:
        info = os.stat(idle.settings_path())
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _stopped_since_last_start():
    """True if the host's last shutdown came after every agent create and start, and after
    the host's boot (a host brought back up is watched afresh)."""
    try:
        shutdown = state.read_json(idle.shutdown_path())
        stopped_at = float(shutdown["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    booted = boot_time() or 0.0
    seen = idle.last_activity(("create", "start"))
    return booted <= stopped_at and all(seen.get(source, 0.0) <= stopped_at for source in ("create", "start"))


def _other_tmux_servers():
    """Pids of live host daemons of this host dir that talk to another tmux server."""

    own_key = daemon_address.tmux_key(os.environ.get("TMUX_TMPDIR", ""))
    directory = os.path.join(state.host_dir(), "host")
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        if not (name.startswith("daemon-") and name.endswith(".pid")) or name[:-4].endswith(own_key):
            continue
        try:
            with open(os.path.join(directory, name)) as handle:
                pid = int(handle.read().split()[0])
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                if b"mngr_remote_helper" in handle.read():
                    found.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)
