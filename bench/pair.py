"""`mngr pair` between a local 20,000-file tree and an agent's work dir on one SSH host,
against unison on the same trees: how long a save takes to appear on the other side (both
ways), and the CPU both pairings use while nothing changes.

The tree is generated from a seeded random.Random: 20,000 text files of 200 B to 4 KB in
400 nested directories. It is copied (cp -a: same bytes, modes and modification times) to
four places, all on tmpfs (/dev/shm, when it has room): mngr's local side, the agent's work
dir on the host, unison's local side and unison's other root on the host, both host copies
owned by the host's user. Both pairings start from identical trees.

The host is one sshd on a loopback port (tests/sshd.py's SshHost, user mngr-test), reached
through a client ssh_config given in MNGR_PROVIDERS__SSH__SSH_CONFIG, as in
bench/push_pull.py; the agent is `mngr create NAME command --in ssh --work-dir DIR`.

Peer: unison 2.52 (Debian's `unison` package), over the same ssh config with its own
ControlMaster/ControlPersist master, warmed before it starts: `unison LOCAL
ssh://ALIAS//REMOTE -batch -auto -times -prefer newer -repeat R`, its archives kept in
directories of the benchmark's own (UNISON on both ends). unison's event-driven mode
(`-repeat watch`) needs the `unison-fsmonitor` program, which Debian does not ship, so the
peer is its polling mode at one second (`-repeat 1`), the closest Debian offers; `-repeat
watch` is tried first and used if it works.

Latency: a file written whole (temporary file renamed over it, as editors save) on one
side, timed until the other side has it with the same bytes (checked every 2 ms).
mngr and unison alternate which goes first, each trial writing local-to-host then
host-to-local; ROUNDS trials, medians and maxima reported. Idle CPU: after everything
settled, IDLE_SECONDS with no change, CPU seconds (utime + stime from /proc) of each
pairing's processes, in total and by part: for mngr the `mngr pair` process, its ssh
master and the host's mngr processes (the host daemon, which also runs the host's idle
watcher, and helpers); for unison the local unison and its ssh client, its ssh master,
and the unison server on the host.

Targets (the issue's): idle pair uses about 0% CPU on a 20,000-file tree; a save reaches
the other side in under 300 ms on loopback.

Run (root, sshd and unison installed): .venv/bin/python bench/pair.py
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import MNGR, REPO, Sandbox, compile_bytecode, header, median, target
from ssh_list import go_cold, kill_and_wait, pids_where, proc_text

SEED = 20261206
FILES, DIRS = 20_000, 400
ROUNDS = 9
IDLE_SECONDS = 10.0
ALIAS = "box"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WAIT_LIMIT = 30.0


def make_tree(root: Path) -> None:
    rng = random.Random(SEED)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(400)]
    dirs = [""]
    while len(dirs) < DIRS:
        parent = rng.choice(dirs)
        if parent.count("/") >= 4:
            continue
        name = f"{rng.choice(words)}{len(dirs)}"
        dirs.append(f"{parent}/{name}" if parent else name)
    for directory in dirs:
        (root / directory).mkdir(parents=True, exist_ok=True)
    pool = [" ".join(rng.choices(words, k=8)) + "\n" for _ in range(2000)]
    for number in range(FILES):
        directory = rng.choice(dirs)
        name = f"{rng.choice(words)}_{number}.txt"
        text = "".join(rng.choices(pool, k=rng.randint(4, 80)))
        (root / directory / name).write_text(text)


def copy_tree(source: Path, dest: Path, owner: tuple[int, int] | None) -> None:
    subprocess.run(["cp", "-a", str(source), str(dest)], check=True)
    if owner is not None:
        subprocess.run(["chown", "-R", f"{owner[0]}:{owner[1]}", str(dest)], check=True)


def save(path: Path, text: str, owner: tuple[int, int] | None) -> None:
    """Write ``path`` whole, as an editor saves: a temporary file renamed over it."""
    temporary = path.with_name(f".{path.name}.saving")
    temporary.write_text(text)
    if owner is not None:
        os.chown(temporary, *owner)
    os.replace(temporary, path)


def wait_for_text(path: Path, text: str) -> float:
    """Seconds until ``path`` holds ``text`` (WAIT_LIMIT at most)."""
    start = time.perf_counter()
    while time.perf_counter() - start < WAIT_LIMIT:
        with contextlib.suppress(OSError):
            if path.read_text() == text:
                return time.perf_counter() - start
        time.sleep(0.002)
    raise RuntimeError(f"{path} never got its new text")


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc_text(int(entry), "stat").rsplit(b") ", 1)
            if len(fields) == 2:
                parents.setdefault(int(fields[1].split()[1]), []).append(int(entry))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(parents.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = proc_text(pid, "stat").rsplit(b") ", 1)
        if len(fields) == 2:
            values = fields[1].split()
            total += int(values[11]) + int(values[12])  # utime, stime
    return total / CLK_TCK


class Pairing:
    """One running pairing: its name, its two roots, and how to find its processes."""

    def __init__(self, name: str, local: Path, remote: Path, process: subprocess.Popen[bytes],
                 processes) -> None:
        self.name = name
        self.local = local
        self.remote = remote
        self.process = process
        self.processes = processes
        self.latencies: dict[str, list[float]] = {"local -> host": [], "host -> local": []}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_mngr(box: Sandbox, host, data: Path, source: Path, owner: tuple[int, int], control_dir: Path) -> Pairing:
    local, remote = data / "mngr-local", data / "host" / "mngr-remote"
    copy_tree(source, local, None)
    copy_tree(source, remote, owner)
    box.mngr("create", "pairbench", "command", "--in", "ssh", "--host", ALIAS, "--no-connect",
             "--work-dir", str(remote), "--", "sleep", "3600")
    log = open(data / "mngr-pair.log", "wb")  # noqa: SIM115 - kept open for the pairing's life
    process = subprocess.Popen([MNGR, "pair", "pairbench", str(local)], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    title = f"ssh: {control_dir}/".encode()

    def processes() -> dict[str, list[int]]:
        masters = pids_where(lambda pid: proc_text(pid, "cmdline").startswith(title))
        return {"local": descendants(process.pid), "ssh master": masters,
                "host": host.remote_processes(b"mngr_remote_helper")}

    return Pairing("mngr pair", local, remote, process, processes)


def start_unison(box: Sandbox, host, data: Path, source: Path, owner: tuple[int, int], ssh_config: Path,
                 control: Path) -> Pairing:
    local, remote = data / "unison-local", data / "host" / "unison-remote"
    copy_tree(source, local, None)
    copy_tree(source, remote, owner)
    local_archives, remote_archives = data / "unison-archives-local", data / "host" / "unison-archives-remote"
    local_archives.mkdir()
    remote_archives.mkdir()
    os.chown(remote_archives, *owner)
    ssh_args = f"-F {ssh_config} -o ControlMaster=auto -o ControlPath={control}/%C -o ControlPersist=600"
    box.run(["ssh", *ssh_args.split(), ALIAS, "true"])  # unison's master, warmed first
    command = ["unison", str(local), f"ssh://{ALIAS}/{remote}", "-batch", "-auto", "-times", "-prefer", "newer",
               "-ui", "text", "-sshargs", ssh_args, "-servercmd", f"env UNISON={remote_archives} unison"]
    env = {**os.environ, "UNISON": str(local_archives)}
    # A first sync builds both archives (a full scan of 20,000 files on each side).
    subprocess.run([*command], env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True)
    repeat = "watch"
    log = open(data / "unison.log", "wb")  # noqa: SIM115 - kept open for the pairing's life
    process = subprocess.Popen([*command, "-repeat", repeat], env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    if process.poll() is not None:  # no unison-fsmonitor: its polling mode at one second
        repeat = "1"
        process = subprocess.Popen([*command, "-repeat", repeat], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    print(f"peer: {' '.join(command)} -repeat {repeat}")
    title = f"ssh: {control}/".encode()
    uid = str(owner[0]).encode()

    def processes() -> dict[str, list[int]]:
        masters = pids_where(lambda pid: proc_text(pid, "cmdline").startswith(title))
        servers = pids_where(lambda pid: b"unison" in proc_text(pid, "cmdline").split(b"\0")[0]
                             and proc_text(pid, "status").split(b"Uid:\t")[-1].split(b"\t")[0] == uid)
        return {"local": descendants(process.pid), "ssh master": masters, "host": servers}

    return Pairing(f"unison -repeat {repeat}", local, remote, process, processes)


def settle(pairing: Pairing, owner: tuple[int, int], label: str) -> None:
    """Wait until the pairing carries a change each way (both started, first scans done)."""
    save(pairing.local / f"settle-{label}-here.txt", f"{label} here\n", None)
    wait_for_text(pairing.remote / f"settle-{label}-here.txt", f"{label} here\n")
    save(pairing.remote / f"settle-{label}-there.txt", f"{label} there\n", owner)
    wait_for_text(pairing.local / f"settle-{label}-there.txt", f"{label} there\n")


def measure_latency(pairing: Pairing, owner: tuple[int, int], trial: int) -> None:
    text = f"{pairing.name} trial {trial} {time.time_ns()}\n"
    target_path = "latency/saved-here.txt"
    save(pairing.local / target_path, text, None)
    pairing.latencies["local -> host"].append(wait_for_text(pairing.remote / target_path, text))
    text = f"{pairing.name} trial {trial} back {time.time_ns()}\n"
    target_path = "latency/saved-there.txt"
    save(pairing.remote / target_path, text, owner)
    pairing.latencies["host -> local"].append(wait_for_text(pairing.local / target_path, text))


def idle_cpu(pairing: Pairing) -> tuple[float, int, dict[str, float]]:
    """(CPU seconds over IDLE_SECONDS of no change, how many processes, seconds per group)
    of the pairing."""
    groups = pairing.processes()
    before = {group: cpu_seconds(pids) for group, pids in groups.items()}
    time.sleep(IDLE_SECONDS)
    spent = {group: cpu_seconds(pids) - before[group] for group, pids in groups.items()}
    return sum(spent.values()), sum(len(pids) for pids in groups.values()), spent


def main() -> None:
    sys.path.insert(0, str(REPO))  # the repository: tests.sshd
    from tests.sshd import SshHost, unavailable_reason

    if unavailable_reason():
        sys.exit(f"cannot run: {unavailable_reason()}")
    if shutil.which("unison") is None:
        sys.exit("cannot run: unison not installed (apt-get install -y unison)")
    header(f"pair: `mngr pair` vs unison on a {FILES:,}-file tree with one SSH host on loopback")
    compile_bytecode()
    with Sandbox() as box:
        control_dir = box.root / "s" / "ssh"
        os.environ["MNGR_STATE_DIR"] = str(control_dir.parent)
        unison_control = box.root / "us"
        unison_control.mkdir(mode=0o700)
        client_dir = box.root / "client"
        client_dir.mkdir()
        host, data, pairings = None, None, []
        try:
            host = SshHost(ALIAS, client_dir)
            host.trust()
            owner = (host.user.pw_uid, host.user.pw_gid)
            ssh_config = box.root / "ssh_config"
            ssh_config.write_text(host.client_config())
            os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(ssh_config)
            (box.config_dir / "config.toml").write_text(f"[hosts.{ALIAS}]\n")
            parent = "/dev/shm" if shutil.disk_usage("/dev/shm").free > 2 * 1024**3 else None
            data = Path(tempfile.mkdtemp(prefix="mngr-pair-", dir=parent))
            os.chmod(data, 0o755)
            (data / "host").mkdir()
            os.chown(data / "host", *owner)
            source = data / "source"
            make_tree(source)
            print(f"tree: {FILES:,} files in {DIRS} directories, on {data} "
                  f"({'tmpfs' if str(data).startswith('/dev/shm') else 'disk'})")
            pairings = [start_mngr(box, host, data, source, owner, control_dir),
                        start_unison(box, host, data, source, owner, ssh_config, unison_control)]
            for pairing in pairings:
                settle(pairing, owner, pairing.name.split()[0])
                (pairing.local / "latency").mkdir(exist_ok=True)
                settle(pairing, owner, pairing.name.split()[0] + "-2")
            for trial in range(ROUNDS):
                for pairing in pairings if trial % 2 == 0 else reversed(pairings):
                    measure_latency(pairing, owner, trial)
            idle = {}
            for pairing in pairings:
                idle[pairing.name] = idle_cpu(pairing)
            running = {pairing.name: pairing.process.poll() is None for pairing in pairings}
        finally:
            for pairing in pairings:
                pairing.stop()
            kill_and_wait(pids_where(lambda pid: proc_text(pid, "cmdline").startswith(
                f"ssh: {unison_control}/".encode())))
            if host is not None:
                go_cold(control_dir, [host])
                host.stop()
            if data is not None:
                shutil.rmtree(data, ignore_errors=True)
    report(pairings, idle, running)


def report(pairings: list[Pairing], idle: dict[str, tuple[float, int, dict[str, float]]],
           running: dict[str, bool]) -> None:
    print(f"\n-- save-to-copy latency, ms: median (max) of {ROUNDS} interleaved trials")
    print(f"| {'pairing':<22} | {'local -> host':>16} | {'host -> local':>16} | idle CPU over {IDLE_SECONDS:.0f} s |")
    print(f"|{'-' * 24}|{'-' * 18}|{'-' * 18}|{'-' * 20}|")
    for pairing in pairings:
        cells = [f"{median(values) * 1000:7.0f} ({max(values) * 1000:5.0f})" for values in pairing.latencies.values()]
        cpu, count, _ = idle[pairing.name]
        share = f"{cpu / IDLE_SECONDS * 100:.2f} % ({count} proc)"
        print(f"| {pairing.name:<22} | {cells[0]:>16} | {cells[1]:>16} | {share:>18} |")
    for pairing in pairings:
        parts = ", ".join(f"{group} {seconds / IDLE_SECONDS * 100:.2f} %"
                          for group, seconds in idle[pairing.name][2].items())
        print(f"idle CPU of {pairing.name} by part: {parts}")
    mngr, peer = pairings[0], pairings[1]
    for direction in mngr.latencies:
        ratio = median(mngr.latencies[direction]) / median(peer.latencies[direction])
        print(f"ratio mngr / {peer.name}, {direction}: {ratio:.2f}")
    print(f"still running at the end: {running}")
    worst = max(median(values) for values in mngr.latencies.values())
    target("a save reaches the other side in under 300 ms (median, both ways)", worst < 0.3)
    target("idle mngr pair uses about 0% CPU (under 1% of one CPU, all its processes)",
           idle[mngr.name][0] / IDLE_SECONDS < 0.01)


if __name__ == "__main__":
    main()
