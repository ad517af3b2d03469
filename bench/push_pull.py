"""`mngr push` and `mngr pull` of a 10,000-file, ~100 MB tree to one SSH host, against rsync.

The tree is generated from a seeded random.Random, so every run moves the same bytes: about
10,000 source-like text files of 1-20 KB (lines drawn from a pool, so they repeat and
compress) in a few hundred nested directories, and ten binary-ish files of 1-5 MB (six of
random bytes, four half random, half zero-padded blocks). It is not a git work tree, so no
.gitignore applies on either side.

The host is one sshd on a loopback port (tests/sshd.py's SshHost, user mngr-test), reached
through a client ssh_config given in MNGR_PROVIDERS__SSH__SSH_CONFIG and a `[hosts.ALIAS]`
section in the sandbox's config.toml. Each mngr target is the work dir of its own agent
(`mngr create NAME command --in ssh --work-dir DIR -- sleep 600`); each rsync target is a
directory beside it, both owned by the test user and made empty beforehand.

Peer, in the same run: `rsync -a -e "ssh -F CONFIG -o ControlMaster=auto -o ControlPath=DIR/%C
-o ControlPersist=60" SRC/ ALIAS:DEST/` (and `ALIAS:DEST/ LOCAL/` for the pull), the rsync
master started once before the first measurement, as mngr's own master is: both sides skip
the ssh handshake. rsync runs without -z (mngr compresses with zlib level 1 where it saves a
tenth; on loopback that costs CPU and saves nothing).

Six cases, each run --runs times (default 7), mngr and rsync alternating which goes first:

1. first push into an empty directory (a fresh agent and a fresh rsync target each run);
2. no-change push (into the first agent's work dir and the first rsync target);
3. one changed file, push (a line appended to a different small file each run);
4. first pull of the whole tree into an empty local directory (fresh each run);
5. no-change pull (into the first pull's directories);
6. one changed file, pull (a line appended to the same file, with the same mtime, in the
   agent's work dir and in the rsync target, which the pulls come from).

A changed file is changed 50 ms before the timed commands start: mngr reads a file only once
its last change is 30 ms old (remote_helper/files.py SETTLE_NS: a write within the same clock
tick could hide behind an unchanged size and mtime), and nobody pushes within 30 ms of saving.
rsync has no such wait. Neither side gets --delete: mngr's push and pull never delete without
it, and rsync -a neither.

All the data (the source, every target, every pull) lives on tmpfs (/dev/shm, when it has
room): this VM's disk is far noisier than the difference being measured (`cp -a` of the same
tree took anywhere from 0.4 to 6.5 s within a minute), and the benchmark is about mngr's own
work next to rsync's, not the disk's. Before each timed command the page cache is written
back (sync), so that no run pays for an earlier one's writes should /tmp be used instead.

mngr and rsync alternate which goes first. After every run the target is checked against its
source (the local tree for a push, the host directory it came from for a pull): every file's path, size, mode and mtime, every directory, and the bytes of a sample of
files (the changed one included). Times are wall clock per command; "CPU" is the command's own
CPU (getrusage of children: mngr's process, or the local rsync and its ssh client), "machine
CPU" all the CPU the machine spent meanwhile (/proc/stat: the host side, sshd and ssh
included), because both ends share the same 2 CPUs.

It also takes an unchanged push apart: the floor (`.venv/bin/python -c "import
mngr.controller.cli.main"`), `mngr push --help` (the floor plus the command's imports), then a
real `mngr push` run in-process by a child with each of its steps wrapped in a timer from
outside (the fleet listing, the GetManifest round trip, the local manifest, decoding the
host's manifest, the compare), and the host's part of GetManifest (walk, then json + zlib)
timed in this process on the same directory with the same code.

Targets: every case no slower than rsync (mngr / rsync <= 1.0).

Run (root, sshd and rsync installed): .venv/bin/python bench/push_pull.py [--runs N]
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import shutil
import stat
import sys
import tempfile
import time
import zlib
from pathlib import Path

from _common import (
    FLOOR_ARGV,
    MNGR,
    PYTHON,
    REPO,
    STEP_TIMER,
    Sandbox,
    compile_bytecode,
    header,
    median,
    target,
)
from ssh_list import go_cold, kill_and_wait, pids_where, proc_text

SEED = 20261124
SMALL_FILES, LARGE_FILES, DIRS = 9_990, 10, 400
RUNS = 7  # of each case, mngr and rsync alternating; --runs N to change
SETTLE_S = 0.05  # past files.SETTLE_NS (30 ms): see Bench.changed_just_before
ALIAS = "box"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the tree -------------------------------------------------------------------------------


def make_tree(root: Path) -> list[str]:
    """Write the benchmark tree below ``root``; its file paths, large files first."""
    rng = random.Random(SEED)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(600)]
    templates = [
        "def {a}_{b}(self, {c}, {d}=None):", "    return self.{a}.{b}({c}, {d})",
        "    {a} = {b}.{c}({d}, {e})", "    if {a} is not None and {b} > {n}:", "class {A}{B}({C}):",
        "import {a}.{b}", "from {a}.{b} import {c}, {d}", "    # {a} {b} {c} {d} {e}",
        '        raise {A}Error(f"{a} {b} {{{c}}}")', '    "{a} {b} {c} {d}"', "", "        {a}.append({b}[{n}])",
        "    for {a} in {b}:", "        yield {a}, {b}", "    {a}: {A} = {A}()", "    }}", "    assert {a} == {n}",
    ]

    def line() -> str:
        a, b, c, d, e = rng.choices(words, k=5)
        return rng.choice(templates).format(a=a, b=b, c=c, d=d, e=e, n=rng.randint(0, 999),
                                            A=a.title(), B=b.title(), C=c.title())

    pool = [line() + "\n" for _ in range(5000)]
    dirs = [""]
    depth = {"": 0}
    while len(dirs) < DIRS:
        parent = rng.choice(dirs)
        if depth[parent] >= 5:
            continue
        name = f"{rng.choice(words)}{len(dirs)}"
        path = f"{parent}/{name}" if parent else name
        dirs.append(path)
        depth[path] = depth[parent] + 1
    for directory in dirs:
        (root / directory).mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(LARGE_FILES):
        path = f"{rng.choice(dirs[1:])}/blob{i}.bin"
        size = rng.randint(1, 5) * 1024 * 1024
        if i < 6:
            data = rng.randbytes(size)
        else:  # blocks of 4 KB: random, or 512 random bytes then zeros
            data = b"".join(rng.randbytes(4096) if rng.random() < 0.5 else rng.randbytes(512) + bytes(3584)
                            for _ in range(size // 4096))
        (root / path).write_bytes(data)
        paths.append(path)
    for i in range(SMALL_FILES):
        directory = rng.choice(dirs)
        path = f"{directory}/{rng.choice(words)}_{i}.py" if directory else f"{rng.choice(words)}_{i}.py"
        size = int(rng.triangular(1024, 20480, 1024))
        text = f"# {path}\n" + "".join(rng.choices(pool, k=size // 30 + 2))
        (root / path).write_bytes(text.encode()[:size])
        paths.append(path)
    return paths


def snapshot(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """path -> (kind, mode, size, mtime_ns) for every file and directory below ``root``."""
    entries = {}
    for directory, subdirs, names in os.walk(root):
        for name in subdirs + names:
            full = os.path.join(directory, name)
            info = os.lstat(full)
            kind = "d" if stat.S_ISDIR(info.st_mode) else "f"
            entries[os.path.relpath(full, root)] = (kind, stat.S_IMODE(info.st_mode),
                                                    0 if kind == "d" else info.st_size,
                                                    0 if kind == "d" else info.st_mtime_ns)
    return entries


def check_same(source: Path, copy: Path, sample: list[str], what: str) -> None:
    """Raise unless ``copy`` holds exactly ``source``'s files and directories (path, kind,
    mode, size, mtime) and the sampled files' bytes."""
    want, have = snapshot(source), snapshot(copy)
    if want != have:
        missing = sorted(set(want) - set(have))[:3]
        extra = sorted(set(have) - set(want))[:3]
        differ = sorted(p for p in set(want) & set(have) if want[p] != have[p])[:3]
        raise RuntimeError(f"{what}: {copy} differs from the source ({len(have)} entries, want {len(want)}): "
                           f"missing {missing}, extra {extra}, differing {[(p, want[p], have[p]) for p in differ]}")
    for path in sample:
        if (source / path).read_bytes() != (copy / path).read_bytes():
            raise RuntimeError(f"{what}: {copy / path} differs from the source byte for byte")


# -- measuring ------------------------------------------------------------------------------


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent, all CPUs (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def timed(box: Sandbox, argv: list[str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s of the command and its children, machine CPU s, stdout); raises on failure."""
    os.sync()  # the previous run's dirty pages are written back before, not during, this one
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = machine_cpu()
    start = time.perf_counter()
    done = box.run(argv, check=False)
    seconds = time.perf_counter() - start
    machine = machine_cpu() - cpu_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed ({done.returncode}): {done.stderr.decode().strip()}")
    own = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, own, machine, done.stdout.decode()


class Bench:
    def __init__(self, box: Sandbox, host, data: Path, paths: list[str], rsync_ssh: str, runs: int) -> None:
        self.runs = runs
        self.box, self.host, self.data, self.source, self.paths = box, host, data, data / "src", paths
        self.rsync_ssh = rsync_ssh
        self.sample = paths[:LARGE_FILES] + paths[LARGE_FILES::500]
        self.samples: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
        self.steps: dict[str, float] = {}

    def remote_dir(self, name: str) -> Path:
        path = self.data / "host" / name
        path.mkdir()
        os.chown(path, self.host.user.pw_uid, self.host.user.pw_gid)
        return path

    def record(self, case: str, who: str, result: tuple[float, float, float, str]) -> str:
        self.samples.setdefault(case, {"mngr": [], "rsync": []})[who].append(result[:3])
        return result[3]

    def rsync(self, source: str, dest: str) -> tuple[float, float, float, str]:
        return timed(self.box, ["rsync", "-a", "-e", self.rsync_ssh, source, dest])

    def changed_just_before(self) -> None:
        """A user saves a file, then pushes: never within the same few milliseconds. mngr
        waits until a file's last change is files.SETTLE_NS old before it reads it (a write
        in the same clock tick would leave size and mtime unchanged); the timed command
        starts after that, as a person's would."""
        time.sleep(SETTLE_S)

    def pair(self, case: str, mngr_first: bool, run_mngr, run_rsync) -> None:
        for step in ((run_mngr, run_rsync) if mngr_first else (run_rsync, run_mngr)):
            step()

    def push_pair(self, case: str, agent: str, mngr_dir: Path, rsync_dir: Path, mngr_first: bool,
                  sample: list[str], expect: str) -> None:
        def run_mngr() -> None:
            out = self.record(case, "mngr", timed(self.box, [MNGR, "push", agent, str(self.source)]))
            if expect not in out:
                raise RuntimeError(f"{case}: mngr push said {out.strip()!r}, expected {expect!r}")
            check_same(self.source, mngr_dir, sample, f"{case}, mngr")

        def run_rsync() -> None:
            self.record(case, "rsync", self.rsync(f"{self.source}/", f"{ALIAS}:{rsync_dir}/"))
            check_same(self.source, rsync_dir, sample, f"{case}, rsync")

        self.pair(case, mngr_first, run_mngr, run_rsync)

    def pull_pair(self, case: str, agent: str, work: Path, copy: Path, mine: Path, theirs: Path, mngr_first: bool,
                  sample: list[str], expect: str) -> None:
        """mngr pulls agent's work dir into ``mine``, rsync its copy into ``theirs``; each
        checked against the host directory it came from."""
        def run_mngr() -> None:
            out = self.record(case, "mngr", timed(self.box, [MNGR, "pull", agent, str(mine)]))
            if expect not in out:
                raise RuntimeError(f"{case}: mngr pull said {out.strip()!r}, expected {expect!r}")
            check_same(work, mine, sample, f"{case}, mngr")

        def run_rsync() -> None:
            self.record(case, "rsync", self.rsync(f"{ALIAS}:{copy}/", f"{theirs}/"))
            check_same(copy, theirs, sample, f"{case}, rsync")

        self.pair(case, mngr_first, run_mngr, run_rsync)

    def breakdown(self, agent: str, work: Path) -> None:
        """Where an unchanged push's time goes: the floor, then the steps of a real `mngr push`
        (a child running mngr's CLI in-process with each step wrapped in a timer, TIMED_PUSH),
        and the host's part of GetManifest taken apart in this process (the same code the host
        daemon runs, on the same directory)."""
        from mngr.controller import sync
        from mngr.remote_helper import files

        def clock(step, count: int = 5) -> float:
            seconds = []
            for _ in range(count):
                start = time.perf_counter()
                step()
                seconds.append(time.perf_counter() - start)
            return median(seconds)

        runs = []
        for _ in range(5):
            done = self.box.run([PYTHON, "-c", TIMED_PUSH, "push", agent, str(self.source)])
            runs.append(json.loads(done.stderr.decode().strip().splitlines()[-1]))
        blob = files.packed_manifest(str(work), False)
        remote = sync._decode_manifest(ALIAS, blob)
        self.steps = {"floor: python start + CLI imports": clock(lambda: self.box.run(FLOOR_ARGV)),
                      "`mngr push --help`: floor + the command's imports": clock(lambda: self.box.mngr("push", "--help"))}
        self.steps |= {f"push: {step}": median([r.get(step, 0.0) for r in runs])
                       for step in dict.fromkeys(step for r in runs for step in r)}
        self.steps |= {
            "  host's part when its tree changed: walk + lstat": clock(
                lambda: files.manifest_entries(str(work))),
            "  host's part when its tree changed: wire form + zlib of it": clock(
                lambda: zlib.compress(files.encode_manifest(remote), 1)),
        }
        self.steps[f"(the host's manifest: {len(remote)} entries, {len(blob) / 1e3:.0f} KB packed)"] = 0.0

    def change_one(self, rng: random.Random, round_: int, *roots: Path) -> str:
        """Append a line to one small file, the same in each of ``roots``, leaving them
        byte and mtime identical; its path."""
        changed = rng.choice(self.paths[LARGE_FILES:])
        mtime_ns = time.time_ns()
        for root in roots:
            with (root / changed).open("a") as handle:
                handle.write(f"# changed in round {round_}\n")
            os.utime(root / changed, ns=(mtime_ns, mtime_ns))
        self.changed_just_before()
        return changed

    def run(self) -> None:
        box, runs = self.box, self.runs
        agents = []
        for i in range(runs):
            work = self.remote_dir(f"m{i}")
            box.mngr("create", f"a{i}", "command", "--in", "ssh", "--host", ALIAS, "--no-connect",
                     "--work-dir", str(work), "--", "sleep", "600")
            agents.append((f"a{i}", work, self.remote_dir(f"r{i}")))
        for i, (agent, work, copy) in enumerate(agents):
            self.push_pair("first push", agent, work, copy, i % 2 == 0, self.sample, "pushed")
        agent, work, copy = agents[0]
        for i in range(runs):
            self.push_pair("no-change push", agent, work, copy, i % 2 == 0, self.sample, "nothing to push")
        self.breakdown(agent, work)
        rng = random.Random(SEED + 1)
        for i in range(runs):
            changed = self.change_one(rng, i, self.source)
            self.push_pair("one changed file, push", agent, work, copy, i % 2 == 1, [changed, *self.sample[:5]],
                           "pushed 1 change(s)")
        pulls = self.data / "pulls"
        pulls.mkdir()
        for i in range(runs):
            mine, theirs = pulls / f"m{i}", pulls / f"r{i}"
            self.pull_pair("first pull", agent, work, copy, mine, theirs, i % 2 == 0, self.sample, "pulled")
            if i:  # the first stays for the pulls below
                shutil.rmtree(mine)
                shutil.rmtree(theirs)
        mine, theirs = pulls / "m0", pulls / "r0"
        for i in range(runs):
            self.pull_pair("no-change pull", agent, work, copy, mine, theirs, i % 2 == 1, self.sample,
                           "nothing to pull")
        for i in range(runs):
            changed = self.change_one(rng, runs + i, work, copy)
            self.pull_pair("one changed file, pull", agent, work, copy, mine, theirs, i % 2 == 0,
                           [changed, *self.sample[:5]], "pulled 1 change(s)")


# A `mngr push` run in-process with its steps timed (nothing in mngr changes: the functions
# are wrapped from outside); the per-step seconds go to stderr as JSON.
TIMED_PUSH = STEP_TIMER + r"""
started = time.perf_counter()
from mngr.controller import local_walk
local_walk.start_early(sys.argv[1:])  # as the console script (controller/cli/entry.py) does
from mngr.controller import fleet, hosts
from mngr.controller.cli import direct  # as entry.py: plain arguments run without click
steps["imports (the local listing runs meanwhile)"] = time.perf_counter() - started
timed(fleet, "ask_host", "ListAgents on the recorded host (to confirm the agent)")
timed(fleet, "list_fleet", "list_fleet (every host, when the record cannot vouch)")
timed(hosts.HostHandle, "get_manifest", "GetManifest round trip (the host daemon's cached manifest)")
timed(local_walk.LocalWalk, "plan", "then the plan from the local listing (a child process)")
start = time.perf_counter()
code = direct.run(sys.argv[1:])
if code is None:
    from mngr.controller.cli.main import run

    code = run(sys.argv[1:])
steps["whole command after imports"] = time.perf_counter() - start
print(json.dumps(steps), file=sys.stderr)
sys.exit(code)
"""


def data_parent() -> str:
    """/dev/shm when it has room for the source and every copy (about 1 GB), else /tmp."""
    with contextlib.suppress(OSError):
        if shutil.disk_usage("/dev/shm").free > 2e9:
            return "/dev/shm"
    return "/tmp"


def stop_masters(control_dir: Path) -> None:
    title = f"ssh: {control_dir}/".encode()
    kill_and_wait(pids_where(lambda pid: proc_text(pid, "cmdline").startswith(title)))


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs of each case (default {RUNS})")
    runs = parser.parse_args().runs
    sys.path.insert(0, str(REPO))  # the repository: tests.sshd
    from tests.sshd import SshHost, unavailable_reason

    if unavailable_reason():
        sys.exit(f"cannot run: {unavailable_reason()}")
    if shutil.which("rsync") is None:
        sys.exit("cannot run: rsync not installed (apt-get install -y rsync)")
    header("push_pull: `mngr push`/`mngr pull` of 10,000 files (~100 MB) to one SSH host vs rsync -a")
    compile_bytecode()
    started = time.perf_counter()
    with Sandbox() as box:
        control_dir = box.root / "s" / "ssh"
        os.environ["MNGR_STATE_DIR"] = str(control_dir.parent)
        rsync_control = box.root / "rs"
        rsync_control.mkdir(mode=0o700)
        client_dir = box.root / "client"
        client_dir.mkdir()
        host, data = None, None
        samples: dict = {}
        steps: dict[str, float] = {}
        try:
            host = SshHost(ALIAS, client_dir)
            host.trust()
            ssh_config = box.root / "ssh_config"
            ssh_config.write_text(host.client_config())
            os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(ssh_config)
            (box.config_dir / "config.toml").write_text(f"[hosts.{ALIAS}]\n")
            data = Path(tempfile.mkdtemp(prefix="mngr-pp-", dir=data_parent()))
            os.chmod(data, 0o755)  # the test user reaches its work dirs below it
            (data / "host").mkdir()
            source = data / "src"
            start = time.perf_counter()
            paths = make_tree(source)
            tree = snapshot(source)
            total = sum(entry[2] for entry in tree.values())
            packed = sum(len(zlib.compress((source / p).read_bytes(), 1)) for p in paths)
            print(f"data (source, targets, pulls) on {data} "
                  f"({'tmpfs' if str(data).startswith('/dev/shm') else 'disk'})")
            print(f"tree: {len(paths)} files in {sum(e[0] == 'd' for e in tree.values())} directories, "
                  f"{total / 1e6:.1f} MB ({sum(tree[p][2] for p in paths[:LARGE_FILES]) / 1e6:.1f} MB in "
                  f"{LARGE_FILES} binary files), zlib level 1 of each file: {packed / 1e6:.1f} MB; "
                  f"written in {time.perf_counter() - start:.1f} s")
            rsync_ssh = (f"ssh -F {ssh_config} -o ControlMaster=auto -o ControlPath={rsync_control}/%C "
                         "-o ControlPersist=60")
            box.run([*rsync_ssh.split(), ALIAS, "true"])  # rsync's master, warmed once
            print(f"peer: rsync -a -e \"{rsync_ssh}\" (persistent ssh master, started before the first "
                  "run, like mngr's); no -z")
            bench = Bench(box, host, data, paths, rsync_ssh, runs)
            samples = bench.samples
            bench.run()
            steps = bench.steps
        finally:
            stop_masters(rsync_control)
            if host is not None:
                go_cold(control_dir, [host])
                host.stop()
            if data is not None:
                shutil.rmtree(data, ignore_errors=True)
    report(samples, steps, runs)
    print(f"total time: {time.perf_counter() - started:.0f} s")


def report(samples: dict[str, dict[str, list[tuple[float, float, float]]]], steps: dict[str, float],
           runs: int) -> None:
    print(f"\n-- medians of {runs} runs each (first push and pull into empty targets); every run's target "
          "checked against its source")
    print(f"{'case':<26} | {'mngr':>8} {'rsync':>8} {'mngr/rsync':>10} | {'CPU mngr':>8} {'rsync':>8} | "
          f"{'machine CPU mngr':>16} {'rsync':>8} | mngr runs (s)")
    ratios = {}
    for case, by in samples.items():
        m = [median([s[k] for s in by["mngr"]]) for k in range(3)]
        r = [median([s[k] for s in by["rsync"]]) for k in range(3)]
        ratios[case] = m[0] / r[0]
        print(f"{case:<26} | {m[0] * 1e3:6.0f}ms {r[0] * 1e3:6.0f}ms {ratios[case]:9.2f}x | "
              f"{m[1] * 1e3:6.0f}ms {r[1] * 1e3:6.0f}ms | {m[2] * 1e3:14.0f}ms {r[2] * 1e3:6.0f}ms | "
              + " ".join(f"{s[0]:.2f}" for s in by["mngr"]) + " / rsync " + " ".join(f"{s[0]:.2f}" for s in by["rsync"]))
    unchanged = samples["no-change push"]["mngr"]
    print(f"\nwhere an unchanged push's {median([s[0] for s in unchanged]) * 1e3:.0f} ms go (medians of 5; "
          "mngr does these steps one after another):")
    for step, seconds in steps.items():
        print(f"  {step:<56} {seconds * 1e3:6.1f} ms" if seconds else f"  {step}")
    for case in ratios:
        target(f"{case}: mngr no slower than rsync (mngr/rsync <= 1.0, measured {ratios[case]:.2f})",
               ratios[case] <= 1.0)


if __name__ == "__main__":
    main()
