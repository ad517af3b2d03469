"""`mngr push` and `mngr pull` of one 300 MB file to one SSH host, against rsync: wall time
and bytes on the wire.

The file is random bytes (seeded), so compression saves nothing and every byte counts. The
host is one sshd on a loopback port (tests/sshd.py's SshHost), as in bench/push_pull.py;
mngr's target is its agent's work dir, rsync's a directory beside it. Peer, in the same run:
`rsync -a --stats -e "ssh -F CONFIG -o ControlMaster=auto -o ControlPath=DIR/%C -o
ControlPersist=60"`, its master warmed before the first measurement (mngr keeps its own).

Cases, each 7 rounds (mngr and rsync alternating which goes first), every result checked
byte for byte (SHA-1 of the whole file) and by mtime:

1. first push: the host has no file;
2. push, nothing changed;
3. push, one byte changed (a different byte each round, rewritten in place);
4. first pull: the local side has no file;
5. pull, nothing changed;
6. pull, one byte changed on the host.

Bytes on the wire: for mngr what its channel carried both ways (`--format json`, `wire`),
for rsync `--stats`' "Total bytes sent" plus "Total bytes received"; both count their own
protocol's bytes before ssh.

All data on tmpfs (/dev/shm): the disk's noise is not what is measured. mngr's cache dir
(XDG_CACHE_HOME) is the sandbox's own, as a user's is theirs alone.

Target: mngr no slower than rsync in every case (median mngr / rsync <= 1.0).

Run (root, sshd and rsync installed): .venv/bin/python bench/large_file.py [--rounds N] [--case NAME ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import MNGR, REPO, Sandbox, compile_bytecode, header, median, target
from ssh_list import go_cold, kill_and_wait, pids_where, proc_text

SIZE = 300 * 1024 * 1024
SEED = 20261206
ALIAS = "box"
NAME = "big.bin"


def sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as source:
        while chunk := source.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def flip_byte(path: Path, rng: random.Random, at: int | None = None) -> int:
    """Change one byte of ``path`` in place (at ``at``, or at random); where it was."""
    where = rng.randrange(path.stat().st_size) if at is None else at
    with path.open("r+b") as handle:
        handle.seek(where)
        byte = handle.read(1)
        handle.seek(where)
        handle.write(bytes([byte[0] ^ 0xFF]))
    return where


def _stat_number(text: str, label: str) -> int:
    found = re.search(rf"{label}: ([\d,.]+)", text)
    if not found:
        raise RuntimeError(f"rsync --stats gave no {label!r}: {text[-300:]!r}")
    return int(re.sub(r"[,.]", "", found.group(1)))


class Bench:
    def __init__(self, box: Sandbox, host, data: Path, rsync_ssh: str, rounds: int,
                 cases: set[str] | None = None) -> None:
        self.box, self.host, self.data, self.rsync_ssh, self.rounds = box, host, data, rsync_ssh, rounds
        self.cases = cases  # None: every case
        self.source = data / "src"
        self.work = self.remote_dir("work")  # mngr's agent's work dir
        self.copy = self.remote_dir("rsync")  # rsync's target on the host
        self.mine, self.theirs = data / "pull-mngr", data / "pull-rsync"
        self.samples: dict[str, dict[str, list[tuple[float, int]]]] = {}

    def remote_dir(self, name: str) -> Path:
        path = self.data / name
        path.mkdir()
        os.chown(path, self.host.user.pw_uid, self.host.user.pw_gid)
        return path

    def mngr(self, *args: str) -> tuple[float, int]:
        os.sync()
        start = time.perf_counter()
        done = self.box.run([MNGR, *args, "--format", "json"], check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"mngr {' '.join(args)} failed: {done.stderr.decode().strip()}")
        wire = json.loads(done.stdout)["wire"]
        return seconds, wire["sent"] + wire["received"]

    def rsync(self, source: str, dest: str) -> tuple[float, int]:
        os.sync()
        start = time.perf_counter()
        done = self.box.run(["rsync", "-a", "--stats", "-e", self.rsync_ssh, source, dest])
        seconds = time.perf_counter() - start
        text = done.stdout.decode()
        return seconds, _stat_number(text, "Total bytes sent") + _stat_number(text, "Total bytes received")

    def pair(self, case: str, index: int, run_mngr: Callable[[], tuple[float, int]],
             run_rsync: Callable[[], tuple[float, int]], check: Callable[[], None]) -> None:
        if self.cases is not None and case not in self.cases:
            if index == self.rounds - 1:  # its last round still runs, untimed: later cases start from its result
                run_mngr()
                run_rsync()
                check()
            return
        by = self.samples.setdefault(case, {"mngr": [], "rsync": []})
        order = [("mngr", run_mngr), ("rsync", run_rsync)]
        for who, run in order if index % 2 == 0 else order[::-1]:
            by[who].append(run())
        check()

    def same(self, *copies: Path) -> Callable[[], None]:
        def check() -> None:
            want = sha1(self.source / NAME)
            mtime = (self.source / NAME).stat().st_mtime_ns
            for copy in copies:
                if sha1(copy / NAME) != want or (copy / NAME).stat().st_mtime_ns != mtime:
                    raise RuntimeError(f"{copy / NAME} is not the source's file")
        return check

    def push(self, index: int) -> tuple[Callable[[], tuple[float, int]], Callable[[], tuple[float, int]]]:
        return (lambda: self.mngr("push", "far", str(self.source)),
                lambda: self.rsync(f"{self.source}/", f"{ALIAS}:{self.copy}/"))

    def pull(self) -> tuple[Callable[[], tuple[float, int]], Callable[[], tuple[float, int]]]:
        return (lambda: self.mngr("pull", "far", str(self.mine)),
                lambda: self.rsync(f"{ALIAS}:{self.copy}/", f"{self.theirs}/"))

    def run(self) -> None:
        rng = random.Random(SEED + 1)
        self.box.mngr("create", "far", "command", "--in", "ssh", "--host", ALIAS, "--no-connect",
                      "--work-dir", str(self.work), "--", "sleep", "600")
        pushed = self.same(self.work, self.copy)
        for index in range(self.rounds):
            for copy in (self.work, self.copy):
                (copy / NAME).unlink(missing_ok=True)
            self.pair("first push", index, *self.push(index), pushed)
        for index in range(self.rounds):
            self.pair("push, nothing changed", index, *self.push(index), pushed)
        for index in range(self.rounds):
            flip_byte(self.source / NAME, rng)
            self.pair("push, one byte changed", index, *self.push(index), pushed)
        self.mine.mkdir()
        self.theirs.mkdir()
        pulled = self.same(self.mine, self.theirs)
        for index in range(self.rounds):
            for copy in (self.mine, self.theirs):
                (copy / NAME).unlink(missing_ok=True)
            self.pair("first pull", index, *self.pull(), pulled)
        for index in range(self.rounds):
            self.pair("pull, nothing changed", index, *self.pull(), pulled)
        for index in range(self.rounds):
            where = flip_byte(self.source / NAME, rng)
            mtime = (self.source / NAME).stat().st_mtime_ns
            for copy in (self.work, self.copy):  # the host's files change as the source did
                flip_byte(copy / NAME, rng, where)
                os.utime(copy / NAME, ns=(mtime, mtime))
            self.pair("pull, one byte changed", index, *self.pull(), pulled)


def stop_masters(control_dir: Path) -> None:
    title = f"ssh: {control_dir}/".encode()
    kill_and_wait(pids_where(lambda pid: proc_text(pid, "cmdline").startswith(title)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--case", action="append", dest="cases",
                        help="measure only this case (repeatable; the others run once, untimed, for their result)")
    arguments = parser.parse_args()
    rounds = arguments.rounds
    sys.path.insert(0, str(REPO))  # the repository: tests.sshd
    from tests.sshd import SshHost, unavailable_reason

    if unavailable_reason():
        sys.exit(f"cannot run: {unavailable_reason()}")
    if shutil.which("rsync") is None:
        sys.exit("cannot run: rsync not installed (apt-get install -y rsync)")
    header(f"large_file: `mngr push`/`mngr pull` of one {SIZE >> 20} MiB file to one SSH host vs rsync -a")
    compile_bytecode()
    started = time.perf_counter()
    samples: dict = {}
    with Sandbox() as box:
        control_dir = box.root / "s" / "ssh"
        os.environ["MNGR_STATE_DIR"] = str(control_dir.parent)
        # mngr's cache of its helper's hash is the sandbox's own: one shared with other
        # checkouts' runs on the machine would be recomputed (~10 ms) on every command.
        os.environ["XDG_CACHE_HOME"] = str(box.root / "cache")
        rsync_control = box.root / "rs"
        rsync_control.mkdir(mode=0o700)
        client_dir = box.root / "client"
        client_dir.mkdir()
        host, data = None, None
        try:
            host = SshHost(ALIAS, client_dir)
            host.trust()
            ssh_config = box.root / "ssh_config"
            ssh_config.write_text(host.client_config())
            os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(ssh_config)
            (box.config_dir / "config.toml").write_text(f"[hosts.{ALIAS}]\n")
            data = Path(tempfile.mkdtemp(prefix="mngr-lf-", dir="/dev/shm"))
            os.chmod(data, 0o755)
            (data / "src").mkdir()
            rng = random.Random(SEED)
            with (data / "src" / NAME).open("wb") as output:
                for _ in range(SIZE // (4 << 20)):
                    output.write(rng.randbytes(4 << 20))
            rsync_ssh = (f"ssh -F {ssh_config} -o ControlMaster=auto -o ControlPath={rsync_control}/%C "
                         "-o ControlPersist=60")
            box.run([*rsync_ssh.split(), ALIAS, "true"])  # rsync's master, warmed once
            print(f"data on {data} (tmpfs); peer: rsync -a --stats -e \"{rsync_ssh}\"; no -z")
            bench = Bench(box, host, data, rsync_ssh, rounds, set(arguments.cases) if arguments.cases else None)
            samples = bench.samples
            bench.run()
        finally:
            stop_masters(rsync_control)
            if host is not None:
                go_cold(control_dir, [host])
                host.stop()
            if data is not None:
                shutil.rmtree(data, ignore_errors=True)
    report(samples, rounds)
    print(f"total time: {time.perf_counter() - started:.0f} s")


def report(samples: dict[str, dict[str, list[tuple[float, int]]]], rounds: int) -> None:
    print(f"\n-- medians of {rounds} rounds, mngr and rsync alternating; every result checked (SHA-1, mtime)")
    print(f"{'case':<24} | {'mngr':>8} {'rsync':>8} {'mngr/rsync':>10} | {'wire mngr':>12} {'rsync':>12} | "
          "mngr runs (s) / rsync runs (s)")
    ratios = {}
    for case, by in samples.items():
        mngr_s, rsync_s = median([s[0] for s in by["mngr"]]), median([s[0] for s in by["rsync"]])
        mngr_b, rsync_b = median([s[1] for s in by["mngr"]]), median([s[1] for s in by["rsync"]])
        ratios[case] = mngr_s / rsync_s
        print(f"{case:<24} | {mngr_s:7.2f}s {rsync_s:7.2f}s {ratios[case]:9.2f}x | {mngr_b:12,.0f} {rsync_b:12,.0f} | "
              + " ".join(f"{s[0]:.2f}" for s in by["mngr"]) + " / " + " ".join(f"{s[0]:.2f}" for s in by["rsync"]))
    for case, ratio in ratios.items():
        target(f"{case}: mngr no slower than rsync (mngr/rsync <= 1.0, measured {ratio:.2f})", ratio <= 1.0)


if __name__ == "__main__":
    main()
