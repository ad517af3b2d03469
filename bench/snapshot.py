"""`mngr snapshot` and `mngr create --snapshot` of a 10,000-file, ~100 MB tree, against tar + zstd.

The tree is push_pull.py's seeded tree (make_tree: about 10,000 source-like text files of
1-20 KB in 400 nested directories and ten binary-ish files of 1-5 MB), written to tmpfs
(/dev/shm, when it has room). One local agent works in it:
`mngr create src command --no-connect --work-dir TREE -- sleep 600`.

1. `mngr snapshot src --format "{id}"` (3 times): a new `<MNGR_STATE_DIR>/snapshots/<id>.tar.zst`
   each time. Peer in the same run: `tar --format=posix -C TREE -cf - . | zstd -3 -T1 -q > FILE` (gzip -1 if
   there is no zstd binary), FILE beside mngr's snapshots.
2. `mngr create rN --no-connect --snapshot ID` (3 times, a fresh name each time): the tree lands
   in `$MNGR_HOST_DIR/work/rN`. Peer: `zstd -dc FILE | tar -C DIR -xf -` (gzip -dc), DIR an
   empty directory under the same MNGR_HOST_DIR.

MNGR_STATE_DIR and MNGR_HOST_DIR lie in the sandbox (/tmp, the disk here), so mngr and the peer
write their archives and restored trees to the same file system; both read the tree from the
same place. mngr and the peer alternate which goes first, and the page cache is written back
(sync) before each timed command. Throughput is tree bytes (the sum of the files' sizes) per
second of wall clock; the ratio is mngr's time over the peer's. Every restored tree (mngr's and
the peer's) is checked against the source: paths, kinds, modes, sizes, mtimes (within 1 us:
the largest difference is printed; the peer's tar uses the posix format, which keeps
nanoseconds), and the bytes of a sample of files. It also prints both archives' sizes, and one more snapshot and restore
run in a child with mngr's steps timed from outside (the pull into a scratch dir, the push out
of one), to show where the time goes. No targets.

Run: .venv/bin/python bench/snapshot.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import MNGR, PYTHON, RUN_TIMED, STEP_TIMER, Sandbox, compile_bytecode, header, median
from push_pull import LARGE_FILES, data_parent, make_tree
from push_pull import snapshot as tree_entries

RUNS = 3

# One `mngr snapshot` / `mngr create --snapshot` run in-process by a child, mngr's steps wrapped
# in timers from outside (nothing in mngr changes); the per-step seconds go to stderr as JSON.
TIMED = STEP_TIMER + r"""
from mngr.controller import snapshots, sync
timed(snapshots, "take", "snapshots.take (all of the snapshot)")
timed(snapshots, "restore", "snapshots.restore (all of the restore)")
timed(sync, "pull", "  sync.pull: the work dir into a scratch dir (helper channel)")
timed(sync, "fill_work_dir", "  sync.fill_work_dir: the scratch dir pushed into the new work dir")
""" + RUN_TIMED


def check_same(source: Path, copy: Path, sample: list[str], what: str) -> int:
    """Raise unless ``copy`` holds ``source``'s files and directories (path, kind, mode, size; mtime
    within 1 us) and the sampled files' bytes; the largest mtime difference in ns."""
    want, have = tree_entries(source), tree_entries(copy)
    if set(want) != set(have):
        raise RuntimeError(f"{what}: {copy} has {len(have)} entries, want {len(want)}: missing "
                           f"{sorted(set(want) - set(have))[:3]}, extra {sorted(set(have) - set(want))[:3]}")
    differ = sorted(p for p in want if want[p][:3] != have[p][:3] or abs(want[p][3] - have[p][3]) > 1000)
    if differ:
        raise RuntimeError(f"{what}: {len(differ)} entries differ, e.g. {[(p, want[p], have[p]) for p in differ[:3]]}")
    for path in sample:
        if (source / path).read_bytes() != (copy / path).read_bytes():
            raise RuntimeError(f"{what}: {copy / path} differs from the source byte for byte")
    return max(abs(want[p][3] - have[p][3]) for p in want)


def timed(box: Sandbox, argv: list[str]) -> tuple[float, str]:
    os.sync()
    start = time.perf_counter()
    done = box.run(argv, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed ({done.returncode}): {done.stderr.decode().strip()}")
    return seconds, done.stdout.decode()


def main() -> None:
    zstd = shutil.which("zstd") is not None
    pack, unpack, suffix = (("zstd -3 -T1 -q", "zstd -dc", ".tar.zst") if zstd else ("gzip -1", "gzip -dc", ".tar.gz"))
    header(f"snapshot: `mngr snapshot` / `mngr create --snapshot` of 10,000 files (~100 MB) vs tar | {pack.split()[0]}")
    compile_bytecode()
    started = time.perf_counter()
    with Sandbox() as box:
        state = box.root / "s"
        os.environ["MNGR_STATE_DIR"] = str(state)
        data = Path(tempfile.mkdtemp(prefix="mngr-snap-", dir=data_parent()))
        results: dict[str, dict[str, list[float]]] = {"snapshot": {"mngr": [], "peer": []},
                                                      "restore": {"mngr": [], "peer": []}}
        sizes: dict[str, int] = {}
        steps: list[dict[str, float]] = []
        skew = {"mngr": 0, "peer": 0}
        try:
            tree = data / "tree"
            paths = make_tree(tree)
            total = sum(entry[2] for entry in tree_entries(tree).values())
            sample = paths[:LARGE_FILES] + paths[LARGE_FILES::500]
            print(f"tree: {len(paths)} files, {total / 1e6:.1f} MB on {data} "
                  f"({'tmpfs' if str(data).startswith('/dev/shm') else 'disk'}); archives, scratch and "
                  f"restored trees under {box.root} ({'tmpfs' if str(box.root).startswith('/dev/shm') else 'disk'})")
            print(f"peer: tar --format=posix -C TREE -cf - . | {pack} > FILE; {unpack} FILE | tar -C DIR -xf -")
            box.mngr("create", "src", "command", "--no-connect", "--work-dir", str(tree), "--", "sleep", "600")
            peer_dir = box.host_dir / "peer"
            peer_dir.mkdir(parents=True)
            peer_file = state / f"peer{suffix}"
            ids = []
            for i in range(RUNS):
                def run_mngr() -> None:
                    seconds, out = timed(box, [MNGR, "snapshot", "src", "--format", "{id}"])
                    results["snapshot"]["mngr"].append(seconds)
                    ids.append(out.strip())
                    sizes["mngr"] = (state / "snapshots" / f"{ids[-1]}.tar.zst").stat().st_size

                def run_peer() -> None:
                    seconds, _ = timed(box, ["bash", "-o", "pipefail", "-c",
                                             f"tar --format=posix -C {tree} -cf - . | {pack} > {peer_file}"])
                    results["snapshot"]["peer"].append(seconds)
                    sizes["peer"] = peer_file.stat().st_size

                for step in ((run_mngr, run_peer) if i % 2 == 0 else (run_peer, run_mngr)):
                    step()
            for i in range(RUNS):
                def restore_mngr(i: int = i) -> None:
                    seconds, _ = timed(box, [MNGR, "create", f"r{i}", "--no-connect", "--snapshot", ids[i]])
                    results["restore"]["mngr"].append(seconds)
                    skew["mngr"] = max(skew["mngr"], check_same(tree, box.host_dir / "work" / f"r{i}", sample,
                                                                f"restore r{i}, mngr"))

                def restore_peer(i: int = i) -> None:
                    target = peer_dir / f"r{i}"
                    target.mkdir()
                    seconds, _ = timed(box, ["bash", "-o", "pipefail", "-c",
                                             f"{unpack} {peer_file} | tar -C {target} -xf -"])
                    results["restore"]["peer"].append(seconds)
                    skew["peer"] = max(skew["peer"], check_same(tree, target, sample, f"restore r{i}, peer"))
                    shutil.rmtree(target)

                for step in ((restore_mngr, restore_peer) if i % 2 == 0 else (restore_peer, restore_mngr)):
                    step()
            for argv in (["snapshot", "src", "--format", "{id}"], ["create", "t0", "--no-connect", "--snapshot", ids[0]]):
                os.sync()
                done = box.run([PYTHON, "-c", TIMED, *argv])
                steps.append(json.loads(done.stderr.decode().strip().splitlines()[-1]))
        finally:
            shutil.rmtree(data, ignore_errors=True)
    report(results, sizes, steps, total, pack)
    print(f"largest mtime difference from the source: mngr {skew['mngr']} ns, peer {skew['peer']} ns")
    print(f"total time: {time.perf_counter() - started:.0f} s")


def report(results: dict[str, dict[str, list[float]]], sizes: dict[str, int], steps: list[dict[str, float]],
           total: int, pack: str) -> None:
    print(f"\n-- medians of {RUNS}; every restored tree checked against the source")
    print(f"{'case':<10} | {'mngr':>8} {'MB/s':>6} | {'peer':>8} {'MB/s':>6} | {'mngr/peer':>9} | runs mngr / peer (s)")
    for case, by in results.items():
        m, p = median(by["mngr"]), median(by["peer"])
        print(f"{case:<10} | {m * 1e3:6.0f}ms {total / 1e6 / m:6.1f} | {p * 1e3:6.0f}ms {total / 1e6 / p:6.1f} | "
              f"{m / p:8.2f}x | " + " ".join(f"{s:.2f}" for s in by["mngr"]) + " / "
              + " ".join(f"{s:.2f}" for s in by["peer"]))
    print(f"archive: mngr {sizes['mngr'] / 1e6:.1f} MB (zstandard level 3), peer {sizes['peer'] / 1e6:.1f} MB "
          f"({pack}): {sizes['mngr'] / sizes['peer']:.2f}x; tree {total / 1e6:.1f} MB")
    print("\none more run of each in a child, mngr's steps timed from outside:")
    for run in steps:
        for step, seconds in run.items():
            print(f"  {step:<70} {seconds * 1e3:7.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
