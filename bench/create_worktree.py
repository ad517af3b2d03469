"""`mngr create NAME --agent-type command --no-connect -- sleep 600` from inside a git repository
of 10,000 files: the local host's default, a worktree on branch mngr/NAME.

create    the mngr command as a subprocess, run in the repository, a new name each run: the
          worktree, the branch, the (empty) carry of uncommitted changes and the agent. The
          agent is destroyed with its branch (`mngr destroy -f --delete-branch`, untimed)
          before the next run.
worktree  `git worktree add --quiet --no-track -b peer-N DIR HEAD`: what git itself costs for
          the same checkout; removed (untimed) before the next run.
floor     `.venv/bin/python -c "import mngr.controller.cli.main"`: interpreter start plus the
          CLI's imports.

Runs alternate the three. A `keeper` tmux session holds the sandbox's tmux server up.

Run: .venv/bin/python bench/create_worktree.py [DIR]

DIR (default /tmp) holds the sandbox: the repository, the worktrees and mngr's host dir.
On a disk that other work keeps busy, the checkout of 10,000 files varies from 0.4 s to
over 10 s and hides everything else; DIR=/dev/shm (a tmpfs) leaves git's own work and
mngr's additions to it to be seen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from _common import FLOOR_ARGV, MNGR, Sandbox, compile_bytecode, header, median, target

RUNS = 9
WARMUP = 1
FILES = 10_000
TARGET_MS = 1000.0  # "well under a second"


def timed_run(box: Sandbox, argv: list[str]) -> float:
    start = time.perf_counter()
    box.run(argv)
    return time.perf_counter() - start


def make_repository(root: str) -> None:
    """FILES small files in 100 directories, one commit."""
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "-C", root]
    os.makedirs(root)
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    for index in range(FILES):
        directory = os.path.join(root, f"pkg{index % 100:02d}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"mod{index}.py"), "w") as output:
            output.write(f"VALUE = {index}\n" * 20)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "10k files"], check=True)


def main() -> None:
    header(f"create_worktree: `mngr create` in a {FILES}-file repository (a worktree) vs `git worktree add`")
    compile_bytecode()
    under = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    print(f"sandbox under {under}")
    with Sandbox(under) as box:
        repo = os.path.join(os.getcwd(), "repo")
        make_repository(repo)
        os.chdir(repo)
        peers = os.path.join(os.path.dirname(repo), "peers")
        os.makedirs(peers)
        box.tmux("new-session", "-d", "-s", "keeper", "sleep 3600", check=True)
        create: list[float] = []
        worktree: list[float] = []
        floor: list[float] = []
        for i in range(WARMUP + RUNS):
            name = f"bench-{i}"
            create_time = timed_run(box, [MNGR, "create", name, "--agent-type", "command", "--no-connect",
                                          "--", "sleep", "600"])
            box.mngr("destroy", "-f", "--delete-branch", name)
            peer = os.path.join(peers, f"peer-{i}")
            worktree_time = timed_run(box, ["git", "worktree", "add", "--quiet", "--no-track", "-b", f"peer-{i}",
                                            peer, "HEAD"])
            box.run(["git", "worktree", "remove", "--force", peer])
            box.run(["git", "branch", "-q", "-D", f"peer-{i}"])
            floor_time = timed_run(box, FLOOR_ARGV)
            if i >= WARMUP:
                create.append(create_time)
                worktree.append(worktree_time)
                floor.append(floor_time)

    c, w, f = median(create) * 1e3, median(worktree) * 1e3, median(floor) * 1e3
    print(f"median of {RUNS} runs each (after {WARMUP} warm-up), ms:")
    print(f"  mngr create (worktree)  {c:7.1f}   min {min(create) * 1e3:6.1f}")
    print(f"  git worktree add        {w:7.1f}   min {min(worktree) * 1e3:6.1f}")
    print(f"  floor (import CLI)      {f:7.1f}   min {min(floor) * 1e3:6.1f}")
    print(f"  ratio create/worktree {c / w:.2f}x   create - worktree - floor = {c - w - f:.1f} ms")
    target(f"create <= {TARGET_MS:.0f} ms in a {FILES}-file repository (measured {c:.1f} ms)", c <= TARGET_MS)


if __name__ == "__main__":
    main()
