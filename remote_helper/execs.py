"""Commands run on the host for `mngr exec`: started, read while they run, killed on request.

Each command runs in its own process group, in the agent's work dir with the agent's
environment. Its output is collected by two reader threads; the controller long-polls
(``read`` waits until there is something new or the command has ended), so output reaches
the user as it is produced. Commands belong to the channel that started them: when that
channel closes, whatever is still running is killed.
"""

import contextlib
import os
import signal
import subprocess
import threading

from .wire import RequestFailed


class RunningCommand(object):
    def __init__(self, argv, cwd, env):
        self._changed = threading.Condition()
        self._chunks = {"stdout": [], "stderr": []}
        self.exit_code = None
        self._open_streams = 2
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        for name, pipe in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            reader = threading.Thread(target=self._pump, args=(name, pipe))
            reader.daemon = True
            reader.start()

    def _pump(self, name, pipe):
        fd = pipe.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            with self._changed:
                self._chunks[name].append(chunk)
                self._changed.notify_all()
        pipe.close()
        with self._changed:
            self._open_streams -= 1
            if self._open_streams == 0:
                self.exit_code = self.process.wait()
            self._changed.notify_all()

    def read(self, wait):
        """Wait up to ``wait`` s for news; return (stdout, stderr, exit code or None)."""
        with self._changed:
            if not self._chunks["stdout"] and not self._chunks["stderr"] and self.exit_code is None:
                self._changed.wait(wait)
            stdout = b"".join(self._chunks["stdout"])
            stderr = b"".join(self._chunks["stderr"])
            self._chunks["stdout"] = []
            self._chunks["stderr"] = []
            return stdout, stderr, self.exit_code

    def kill(self):
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)


class CommandTable(object):
    """The commands one channel has started, by id."""

    def __init__(self):
        self._commands = {}
        self._lock = threading.Lock()
        self._next_id = 1

    def start(self, argv, cwd, env):
        if not os.path.isdir(cwd):
            raise RequestFailed("invalid", "work dir %s does not exist on this host" % cwd)
        try:
            command = RunningCommand(argv, cwd, env)
        except OSError as exc:
            raise RequestFailed("invalid", "cannot run %s: %s" % (argv[0], exc.strerror)) from exc
        with self._lock:
            command_id = self._next_id
            self._next_id += 1
            self._commands[command_id] = command
        return command_id

    def _get(self, command_id):
        with self._lock:
            command = self._commands.get(command_id)
        if command is None:
            raise RequestFailed("not_found", "no running command with id %d" % command_id)
        return command

    def read(self, command_id, wait):
        command = self._get(command_id)
        stdout, stderr, exit_code = command.read(wait)
        if exit_code is not None:  # the last reply: it carries whatever output was left
            with self._lock:
                self._commands.pop(command_id, None)
        return stdout, stderr, exit_code

    def kill(self, command_id):
        self._get(command_id).kill()

    def kill_all(self):
        with self._lock:
            commands = list(self._commands.values())
            self._commands.clear()
        for command in commands:
            command.kill()
