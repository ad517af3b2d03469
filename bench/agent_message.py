"""A message to a real Claude Code and a real Codex: from `mngr message` to the model having it,
vs the same agent driven by hand with tmux.

Both CLIs (as `./scripts/install.sh --test` installs them) run under a HOME of the
benchmark's own and talk to the model stand-in of the tests (tests/model_standin.py), served
from this process, so "arrived" is the moment the stand-in has a request whose newest user
text is the message, byte for byte (polled every 0.5 ms).

Peers, in the same run, on the same agent's pane (`=mngr-NAME:^`), as someone driving tmux
by hand would do it properly: `tmux load-buffer -b b -` (the text on stdin), then
`tmux paste-buffer -d -p -r -b b -t PANE \\; send-keys -t PANE Enter` (a bracketed paste and
Enter in one tmux call; typing with send-keys is not a peer: Claude does not submit 63+
characters typed that way, Codex nothing at all). mngr does more: it waits for the input
box, and returns only once the agent's session log holds the message.

Texts: a 38-byte sentence and 10 KB of code-review lines. Each case runs RUNS times, the
cases alternating; after each message the agent's reply is awaited (the stand-in answers at
once) and its screen left to settle, so every message meets an idle agent.

Run: .venv/bin/python bench/agent_message.py
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from _common import MNGR, REPO, Sandbox, compile_bytecode, header, median

sys.path.insert(0, str(REPO))
from tests import agent_clis
from tests.model_standin import ModelStandin

RUNS = 8
WARMUP = 1
SHORT = "Please run the tests and fix failures."
POLL_SECONDS = 0.0005
ARRIVAL_TIMEOUT = 60.0
SETTLE_SECONDS = 1.0


def ten_kb() -> str:
    lines = [f"{number:03d}: please look at handler_{number}() in src/app.py: 'retries' \"timeout\" $HOME `x`"
             for number in range(200)]
    return "\n".join(lines)[:10_000]


class Arrival(threading.Thread):
    """Watches, while the sender runs, for a request beyond the first ``seen`` ending with ``text``."""

    def __init__(self, standin: ModelStandin, text: str, seen: int) -> None:
        super().__init__(daemon=True)
        self.standin, self.text, self.seen = standin, text, seen
        self.at: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + ARRIVAL_TIMEOUT
        while time.monotonic() < deadline:
            for exchange in self.standin.exchanges[self.seen:]:
                if exchange.api != "other" and exchange.user_texts()[-1:] == [self.text]:
                    self.at = time.perf_counter()
                    return
            time.sleep(POLL_SECONDS)

    def seconds_after(self, started: float) -> float:
        self.join()
        if self.at is None:
            last = [exchange.user_texts()[-1:] for exchange in self.standin.exchanges[self.seen:]]
            raise RuntimeError(f"{self.text[:30]!r} did not reach the model (it had: {last!r:.300})")
        return self.at - started


def by_hand(box: Sandbox, name: str, text: str) -> None:
    pane = f"=mngr-{name}:^"
    subprocess.run(["tmux", "load-buffer", "-b", "b", "-"], input=text.encode(), check=True)
    box.tmux("paste-buffer", "-d", "-p", "-r", "-b", "b", "-t", pane, ";", "send-keys", "-t", pane, "Enter",
             check=True)


def main() -> None:
    header("agent message: `mngr message` to a real Claude and Codex until the model has it, vs tmux by hand")
    reason = agent_clis.missing_reason()
    if reason:
        raise SystemExit(reason)
    compile_bytecode()
    standin = ModelStandin()
    texts = {"38 B": SHORT, "10 KB": ten_kb()}
    results: dict[str, list[float]] = {}
    try:
        with Sandbox() as box:
            import os

            home = box.root / "home"
            agent_clis.set_up_home(home, standin, trusted=[box.work_dir])
            os.environ.update(agent_clis.user_environment(home, standin, os.environ["PATH"]))
            for agent_type in ("claude", "codex"):
                box.mngr("create", agent_type, "-t", agent_type, "--no-connect")
            for run in range(WARMUP + RUNS):
                for agent_type in ("claude", "codex"):
                    for size, text in texts.items():
                        for way in ("mngr", "tmux"):
                            unique = f"{text} [{way} {run}]"
                            arrival = Arrival(standin, unique, len(standin.exchanges))
                            arrival.start()
                            started = time.perf_counter()
                            if way == "mngr":
                                box.run([MNGR, "message", agent_type, unique])
                            else:
                                by_hand(box, agent_type, unique)
                            returned = time.perf_counter() - started
                            try:
                                arrived = arrival.seconds_after(started)
                            except RuntimeError as exc:
                                if run >= WARMUP:
                                    raise SystemExit(f"{agent_type}, {size}, by {way}: {exc}") from None
                                # A CLI just started may drop the Enter of a paste made by hand (Claude
                                # does): pressed again, as its user would, before anything is timed.
                                box.tmux("send-keys", "-t", f"=mngr-{agent_type}:^", "Enter", check=True)
                                arrived = 0.0
                            if run >= WARMUP:
                                results.setdefault(f"{agent_type} {size} {way}", []).append(arrived)
                                results.setdefault(f"{agent_type} {size} {way} returned", []).append(returned)
                            time.sleep(SETTLE_SECONDS)
    finally:
        standin.close()
    print(f"median of {RUNS} runs (after {WARMUP} warm-up), ms from the start until the model has the text")
    print("(and until the command returned: mngr once the session log has it, tmux once its calls are done):")
    for agent_type in ("claude", "codex"):
        for size in texts:
            ours = median(results[f"{agent_type} {size} mngr"]) * 1e3
            peer = median(results[f"{agent_type} {size} tmux"]) * 1e3
            ours_returned = median(results[f"{agent_type} {size} mngr returned"]) * 1e3
            peer_returned = median(results[f"{agent_type} {size} tmux returned"]) * 1e3
            print(f"  {agent_type:6} {size:>5}: mngr message {ours:7.1f} (returned {ours_returned:6.1f})   "
                  f"tmux by hand {peer:7.1f} (returned {peer_returned:5.1f})   ratio {ours / peer:5.2f}x   "
                  f"(+{ours - peer:.0f} ms)")


if __name__ == "__main__":
    main()
