"""Start-up of `mngr push` and `mngr pull` with nothing to move: through the resident mngr,
run in-process (MNGR_RESIDENT=0), against rsync and, with ``--against``, mngr at an earlier
commit.

A tree of 100 small files is small enough that mngr's own start (Python, its imports,
finding the agent, the channel) is all of a push or pull that changes nothing; that is
what this bench is about (bench/push_pull.py does the same at 10,000 files, where listing
the tree counts too).

One SSH host (tests/sshd.py, loopback), one agent whose work dir holds the tree, reached
through a client ssh_config given in MNGR_PROVIDERS__SSH__SSH_CONFIG and a `[hosts.ALIAS]`
section. Three commands per case, in an order that alternates every round:

- mngr of this tree, run as a script holding what the console script holds (`from
  mngr.controller.cli.entry import main; main()`) with PYTHONPATH naming the tree: once
  through its resident (started by the first run, as a user's first push starts it), once
  with MNGR_RESIDENT=0 (in-process, as before the resident);
- with ``--against REV``, the same for mngr at REV, exported with `git archive` (its own
  resident, if it has one, is turned off);
- `rsync -a -e "ssh -F CONFIG -o ControlMaster=auto -o ControlPath=DIR/%C -o
  ControlPersist=60"`, its master warmed before the first run.

Both mngrs share the state dir, so both find the agent the way they would on a user's
machine after the first command. Bytecode is written first for both trees (the machine sets
PYTHONDONTWRITEBYTECODE=1). Times are wall clock; "CPU" is the command's own (children's
rusage), so the host side is not in it.

Targets: no-change push and pull no slower than rsync (mngr / rsync <= 1.0).

Run (root, sshd and rsync installed): .venv/bin/python bench/start_up.py [--runs N] [--against REV] [--files N]
(the bench commands run from a script file, not `python -c`: a resident serves only a
client whose import path is its own, and `-c` puts the current directory first on it)
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PYTHON, REPO, Sandbox, compile_bytecode, header, median, target
from ssh_list import go_cold

ALIAS = "benchhost"
RUNS = 15
FILES = 100


def timed(argv: list[str], env: dict[str, str] | None) -> tuple[float, float]:
    """(wall seconds, the command's CPU seconds) of a command that must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed: {done.stderr.decode().strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def export(revision: str, into: Path) -> Path:
    """A directory to put on PYTHONPATH for mngr at ``revision``, with its bytecode written."""
    source = into / "source"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    subprocess.run([PYTHON, "-m", "compileall", "-q", *(str(source / d) for d in ("controller", "providers",
                                                                               "remote_helper"))],
                   capture_output=True, check=True)
    (into / "path").mkdir()
    (into / "path" / "mngr").symlink_to(source)
    return into / "path"


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"rounds of each case (default {RUNS})")
    parser.add_argument("--against", default="", help="also mngr at this git revision (in-process)")
    parser.add_argument("--files", type=int, default=FILES,
                        help=f"files in the tree (default {FILES}; 10000 compares with push_pull.py's no-change rows)")
    options = parser.parse_args()
    sys.path.insert(0, str(REPO))  # the repository: tests.sshd
    from tests.sshd import SshHost, unavailable_reason

    if unavailable_reason():
        sys.exit(f"cannot run: {unavailable_reason()}")
    if shutil.which("rsync") is None:
        sys.exit("cannot run: rsync not installed (apt-get install -y rsync)")
    against = options.against and subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", options.against],
                                                  capture_output=True, text=True, check=True).stdout.strip()
    header(f"start_up: `mngr push`/`mngr pull` of {options.files} files, nothing changed: through the resident, "
           f"in-process, rsync -a" + (f", mngr at {against}" if against else ""))
    compile_bytecode()
    with Sandbox() as box:
        os.environ["MNGR_STATE_DIR"] = str(box.root / "s")
        (box.root / "client").mkdir()
        here = box.root / "here"
        here.mkdir()
        (here / "mngr").symlink_to(REPO)
        script = box.root / "mngr-entry.py"
        script.write_text("import sys\nfrom mngr.controller.cli.entry import main\nsys.exit(main())\n")
        trees = {"mngr resident": (here, "1"), "mngr in-process": (here, "0")}
        if against:
            earlier = box.root / "earlier"
            earlier.mkdir()
            trees[f"mngr@{against}"] = (export(options.against, earlier), "0")
        host = SshHost(ALIAS, box.root / "client")
        data = Path(tempfile.mkdtemp(prefix="mngr-su-", dir="/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"))
        rsync_control = box.root / "rs"
        rsync_control.mkdir(mode=0o700)
        rsync_ssh = ""
        try:
            host.trust()
            ssh_config = box.root / "ssh_config"
            ssh_config.write_text(host.client_config())
            os.environ["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(ssh_config)
            (box.config_dir / "config.toml").write_text(f"[hosts.{ALIAS}]\n")
            os.chmod(data, 0o755)
            source, work = data / "src", data / "work"
            for directory in (source, work, data / "pulled", data / "rsync-pulled"):
                directory.mkdir()
            for i in range(options.files):  # 0 to 9,900 bytes, 100 directories at most
                folder = source / f"d{i // 100}" if options.files > FILES else source
                folder.mkdir(exist_ok=True)
                (folder / f"f{i}.txt").write_text("x" * 100 * (i % 100))
            subprocess.run(["chown", "-R", host.user.pw_name, str(data)], check=True)
            box.mngr("create", "a0", "command", "--in", "ssh", "--host", ALIAS, "--no-connect",
                     "--work-dir", str(work), "--", "sleep", "600")
            rsync_ssh = (f"ssh -F {ssh_config} -o ControlMaster=auto -o ControlPath={rsync_control}/%C "
                         "-o ControlPersist=60")
            box.run([*rsync_ssh.split(), ALIAS, "true"])
            rsync_copy = f"{ALIAS}:{data}/rsync-copy/"
            cases = {
                "push, nothing changed": (["push", "a0", str(source)], ["rsync", "-a", "-e", rsync_ssh,
                                                                         f"{source}/", rsync_copy]),
                "pull, nothing changed": (["pull", "a0", str(data / "pulled")], ["rsync", "-a", "-e", rsync_ssh,
                                                                                  rsync_copy, f"{data}/rsync-pulled/"]),
            }
            commands: dict[str, dict[str, tuple[list[str], dict[str, str] | None]]] = {}
            for case, (mngr_args, rsync_argv) in cases.items():
                commands[case] = {who: ([PYTHON, str(script), *mngr_args],
                                        {**os.environ, "PYTHONPATH": str(path), "MNGR_RESIDENT": resident})
                                  for who, (path, resident) in trees.items()}
                commands[case]["rsync"] = (rsync_argv, None)
                for argv, env in commands[case].values():  # the first of each: copies, the record, the resident
                    timed(argv, env)
            time.sleep(2)  # the resident the first runs started is listening
            argv, env = commands["push, nothing changed"]["mngr resident"]
            probe = subprocess.run(argv, env={**env, "MNGR_DEBUG": "1"}, capture_output=True, text=True)
            if "run by the resident" not in probe.stderr:
                sys.exit(f"the resident did not serve the probe: {probe.stderr.strip()}")
            print(f"peer: rsync -a -e \"{rsync_ssh}\" (master warmed first); {options.runs} rounds, order "
                  "alternating\n")
            print(f"| case | {' | '.join(commands[next(iter(commands))])} | " + " | ".join(
                f"{who} / rsync" for who in trees) + " |")
            print("|---" * (2 * len(trees) + 2) + "|")
            for case, by in commands.items():
                samples: dict[str, list[tuple[float, float]]] = {who: [] for who in by}
                for round_ in range(options.runs):
                    order = list(by) if round_ % 2 == 0 else list(reversed(by))
                    for who in order:
                        samples[who].append(timed(*by[who]))
                wall = {who: median([s[0] for s in runs]) for who, runs in samples.items()}
                cpu = {who: median([s[1] for s in runs]) for who, runs in samples.items()}
                cells = [f"{wall[who] * 1e3:.0f} ms ({cpu[who] * 1e3:.0f} ms CPU)" for who in by]
                ratios = [wall[who] / wall["rsync"] for who in trees]
                print(f"| {case} | {' | '.join(cells)} | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
                target(f"{case}: mngr no slower than rsync (measured {ratios[0]:.2f})", ratios[0] <= 1.0)
        finally:
            shutil.rmtree(box.root / "s" / "resident", ignore_errors=True)  # the resident leaves when its socket goes
            if rsync_ssh:
                subprocess.run([*rsync_ssh.split(), "-O", "exit", ALIAS], capture_output=True)
            go_cold(box.root / "s" / "ssh", [host])  # mngr's own ssh masters
            host.stop()
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
