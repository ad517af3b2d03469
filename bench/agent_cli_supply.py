"""`mngr create NAME claude --in ssh --no-connect` to the agent ready for input, on a host
without claude (mngr copies the user's binary) and on one that has it, against doing it by hand.

Hosts: one sshd per round on a loopback port (tests/sshd.py's SshHost: user mngr-test, which
has no claude, and an empty home of the run's). The user's claude is the test install
(.venv/agent-clis, a 245 MB native binary), set up as a user who has used claude has it
(tests/agent_clis.set_up_home: onboarding done, the key approved) to talk to the tests'
model stand-in on 127.0.0.1; mngr gives each agent the config it needs of the user's. For
the run by hand the host's user's home gets the same setup. Each round, in this order:

fresh   `mngr create fN claude --in ssh --host hN --no-connect` on the round's new
        host: the binary is copied (245 MB), then claude starts; timed to create's return,
        which is when claude shows its input box.
has-it  the same for a second agent on that host: nothing is copied (checked: the landed
        file keeps its inode and mtime).
scp     `scp -O` of the same binary to the host, over a ControlMaster of its own opened
        beforehand (untimed): the copy alone, as a user would do it (-O: the test sshd has
        no sftp subsystem).
by hand `ssh hN 'tmux new-session -d ... claude'` with the scp'd binary, then `ssh hN tmux
        capture-pane` until the input box shows (same master): starting claude over plain
        ssh once it is there.

copy    in-process `ensure_cli(handle, "claude", "copy")` on the round's host once its
        bundle is removed: the copy alone, and within it the FinishCli request (the host's
        check of the landed parts, fsync, `claude --version`, rename), timed apart.
re-read the peer of that check: reading the landed binary and hashing it (sha256, as the
        host's check did before parts were checked as they land), on the same machine.

Ratios: fresh against scp + by hand (what a user does by hand for a fresh host), has-it
against by hand, FinishCli against FinishCli + re-read (what it would cost had it re-read).

Run (root, sshd installed, ./scripts/install.sh --test): .venv/bin/python bench/agent_cli_supply.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, Sandbox, compile_bytecode, header, median

ROUNDS = 5
WARMUP = 1
READY = "\u276f"  # claude's input box prompt character


def main() -> None:
    sys.path.insert(0, str(REPO))
    from tests import agent_clis
    from tests.model_standin import ModelStandin
    from tests.sshd import SshHost, ensure_test_user, unavailable_reason

    reason = unavailable_reason() or agent_clis.missing_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    header("agent_cli_supply: mngr create claude --in ssh on a host without it / with it, vs scp + ssh by hand")
    compile_bytecode()
    binary = (agent_clis.AGENT_CLI_BIN / "claude").resolve()
    print(f"claude: {binary} ({binary.stat().st_size >> 20} MB)")
    standin = ModelStandin()
    results: dict[str, list[float]] = {"fresh": [], "has-it": [], "scp": [], "by hand": [], "copy": [],
                                       "finish": [], "re-read": []}
    with Sandbox() as box:
        os.environ["MNGR_STATE_DIR"] = str(box.root / "s")
        # The user: both CLIs on PATH, set up to talk to the stand-in (as the tests' user).
        user_home = box.root / "home"
        agent_clis.set_up_home(user_home, standin, trusted=[box.work_dir])
        os.environ.update(agent_clis.user_environment(user_home, standin, os.environ["PATH"]))
        client_dir = box.root / "client"
        client_dir.mkdir()
        try:
            for index in range(WARMUP + ROUNDS):
                # The host's user: an empty home of this run's, no claude on its PATH.
                home = Path(tempfile.mkdtemp(prefix="mngr-bench-home-", dir="/tmp"))
                user = ensure_test_user()
                os.chown(home, user.pw_uid, user.pw_gid)
                host = SshHost(f"h{index}", client_dir, env={"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"})
                try:
                    host.trust()
                    times = one_round(box, host, home, index, standin, binary, agent_clis)
                finally:
                    host.stop()
                    shutil.rmtree(home, ignore_errors=True)
                print(f"round {index}{' (warm-up)' if index < WARMUP else ''}: "
                      + ", ".join(f"{key} {value:.2f} s" for key, value in times.items()), flush=True)
                if index >= WARMUP:
                    for key, value in times.items():
                        results[key].append(value)
        finally:
            standin.close()
    fresh, has_it, scp, by_hand, copy, finish, reread = (
        median(results[key]) for key in ("fresh", "has-it", "scp", "by hand", "copy", "finish", "re-read"))
    print()
    print("| case | median | ratio |")
    print("|---|---|---|")
    print(f"| mngr create, fresh host (copy + start) | {fresh:.2f} s | {fresh / (scp + by_hand):.2f}x scp + by hand |")
    print(f"| mngr create, host has it | {has_it:.2f} s | {has_it / by_hand:.2f}x by hand |")
    print(f"| scp of the binary (own ControlMaster) | {scp:.2f} s | |")
    print(f"| claude started over plain ssh by hand | {by_hand:.2f} s | |")
    print(f"| the copy alone (in-process ensure_cli) | {copy:.2f} s | {copy / scp:.2f}x scp |")
    print(f"| its FinishCli (parts checked as they landed) | {finish:.2f} s | "
          f"{finish / (finish + reread):.2f}x FinishCli + re-read |")
    print(f"| re-read + sha256 of the landed binary | {reread:.2f} s | |")


def one_round(box: Sandbox, host, home: Path, index: int, standin, binary: Path,  # type: ignore[no-untyped-def]
              agent_clis) -> dict[str, float]:
    config = box.root / "ssh_config"
    config.write_text(host.client_config())
    os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
    hand_dir = host.remote_root / "hand"
    hand_dir.mkdir()
    names = (f"f{index}", f"g{index}")
    # The host's user's own claude setup, for the run by hand (mngr's agents get their own).
    agent_clis.set_up_home(home, standin, trusted=[hand_dir])
    subprocess.run(["chown", "-R", f"{host.user.pw_uid}:{host.user.pw_gid}", str(home), str(hand_dir)], check=True)
    env = agent_clis.user_environment(home, standin, "")
    del env["PATH"]
    times: dict[str, float] = {}

    def create(name: str) -> float:
        start = time.perf_counter()
        box.mngr("create", name, "claude", "--in", "ssh", "--host", host.alias, "--no-connect")
        return time.perf_counter() - start

    times["fresh"] = create(names[0])
    [landed] = (host.remote_host_dir / "clis").glob("*/claude")
    before = landed.stat()
    times["has-it"] = create(names[1])
    after = landed.stat()
    if (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns):
        raise RuntimeError("the second agent copied the binary again")

    control = box.root / f"cm-{index}"
    ssh = ["-F", str(config), "-o", f"ControlPath={control}", "-o", "BatchMode=yes"]
    subprocess.run(["ssh", *ssh, "-o", "ControlMaster=yes", "-o", "ControlPersist=60", "-f", "-N", host.alias],
                   check=True)
    try:
        target = f"{hand_dir}/claude"
        start = time.perf_counter()
        subprocess.run(["scp", "-q", "-O", *ssh, str(binary), f"{host.alias}:{target}"], check=True)
        times["scp"] = time.perf_counter() - start
        variables = " ".join(f"{key}={value}" for key, value in env.items())
        start = time.perf_counter()
        subprocess.run(["ssh", *ssh, host.alias,
                        f"cd {hand_dir} && tmux -L hand new-session -d -s hand -x 200 -y 50 "
                        f"'env {variables} {target}'"], check=True)
        while True:
            screen = subprocess.run(["ssh", *ssh, host.alias, "tmux -L hand capture-pane -p -t hand"],
                                    capture_output=True, text=True).stdout
            if any(line.startswith(READY) for line in screen.splitlines()):
                break
            if time.perf_counter() - start > 120:
                raise RuntimeError(f"claude by hand never showed its input box:\n{screen}")
        times["by hand"] = time.perf_counter() - start
        subprocess.run(["ssh", *ssh, host.alias, "tmux -L hand kill-server"], capture_output=True)
    finally:
        subprocess.run(["ssh", *ssh, "-O", "exit", host.alias], capture_output=True)
    times.update(copy_alone(host, landed.parent, config))
    return times


def copy_alone(host, bundle: Path, config: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The copy of claude in-process on ``host`` once its ``bundle`` is gone, its FinishCli
    timed apart; then the re-read of the landed binary that the check no longer does."""
    import hashlib

    from mngr.controller.cli_supply import ensure_cli
    from mngr.controller.hosts import HostHandle
    from mngr.providers.ssh import SshProvider

    shutil.rmtree(bundle)
    finished: list[float] = []
    with HostHandle(SshProvider({"ssh_config": str(config)}), host.alias, timeout=120) as handle:
        handle.connect()
        finish_cli = handle.finish_cli

        def timed_finish(request):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            finish_cli(request)
            finished.append(time.perf_counter() - start)

        handle.finish_cli = timed_finish  # type: ignore[method-assign]
        start = time.perf_counter()
        if ensure_cli(handle, "claude", "copy").source != "copy":
            raise RuntimeError("the copy did not happen")
        copy = time.perf_counter() - start
    start = time.perf_counter()
    hasher = hashlib.sha256()
    with open(bundle / "claude", "rb") as landed:
        while chunk := landed.read(1 << 20):
            hasher.update(chunk)
    return {"copy": copy, "finish": finished[0], "re-read": time.perf_counter() - start}


if __name__ == "__main__":
    main()
