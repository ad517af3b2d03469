"""Telling the user that an agent waits for them: the ``[notify] on_waiting`` command and
the ``mngr_on_agent_waiting`` plugin hook, run by `mngr events --follow` for each ``state``
event with the state WAITING.

They run on a thread of their own, one event at a time, so a slow notification never holds
up the events printed. A command that fails (or a listener that raises) is reported once on
stderr, not again for every event after, and never ends the follow.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .plugins import Registry

COMMAND_TIMEOUT_SECONDS = 60.0


def starts_waiting(event: Mapping[str, Any]) -> bool:
    return event.get("event") == "state" and event.get("state") == "WAITING"


class WaitingNotifier:
    def __init__(self, command: str, registry: Registry | None, report: Callable[[str], None]) -> None:
        self._command = command.strip()
        self._registry = registry
        self._report = report
        self._reported: set[str] = set()
        self._pending: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="notify", daemon=True)
        self._worker.start()

    def offer(self, event: Mapping[str, Any]) -> None:
        """Notify of ``event`` if it is an agent starting to wait."""
        if starts_waiting(event):
            self._pending.put(event)

    def close(self, timeout: float | None = None) -> None:
        """Let the notifications offered so far finish (at most ``timeout`` seconds)."""
        self._pending.put(None)
        self._worker.join(timeout)

    def _run(self) -> None:
        while True:
            event = self._pending.get()
            if event is None:
                return
            if self._command:
                self._run_command(event)
            if self._registry is not None:
                for plugin, error in self._registry.on_agent_waiting(event):
                    self._once(f"plugin:{plugin}", f"plugin {plugin!r} failed in mngr_on_agent_waiting: {error}")

    def _run_command(self, event: Mapping[str, Any]) -> None:
        env = {**os.environ, "MNGR_AGENT": str(event.get("agent", "")), "MNGR_HOST": str(event.get("host", "")),
               "MNGR_WAITING_REASON": str(event.get("waiting_reason") or "")}
        try:
            # Its output goes to stderr: stdout is the event stream's.
            completed = subprocess.run(["/bin/sh", "-c", self._command], input=(json.dumps(event) + "\n").encode(),
                                       env=env, stdout=2, stderr=subprocess.PIPE, timeout=COMMAND_TIMEOUT_SECONDS,
                                       check=False)
        except subprocess.TimeoutExpired:
            self._once("command", f"[notify] on_waiting ran longer than {COMMAND_TIMEOUT_SECONDS:.0f} s and was "
                                  "ended")
            return
        except OSError as exc:
            self._once("command", f"[notify] on_waiting could not run: {exc}")
            return
        if completed.returncode != 0:
            detail = completed.stderr.decode("utf-8", "replace").strip().splitlines()
            self._once("command", f"[notify] on_waiting failed (exit status {completed.returncode})"
                                  + (f": {detail[-1]}" if detail else ""))

    def _once(self, key: str, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            self._report(message + " (reported once; the follow goes on)")
