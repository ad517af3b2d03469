"""The agent's CLI on a remote host: found in the user's own install, sent once per host and version.

The claude and codex npm packages ship self-contained native binaries (claude's
``bin/claude.exe``, codex's ``vendor/<triple>/`` package); a user's install of either is
therefore all a Linux host needs. ``ensure_cli`` asks the host's helper where the CLI is
(remote_helper/cli_bundles.py): the host's own when it is recent enough (mode ``auto``), a
bundle landed earlier, or else it sends the bundle for the host's machine, part by part with
a few parts in flight (memory stays under 2 * (PARTS_IN_FLIGHT + 1) * PART_BYTES). The first
parts (1 MiB) go alone, as they are, to measure the link; the others go zlib-compressed
only where the link is slow (link_rate.py, as for push and pull). Each part carries the
sha256 of its bytes (computed here once per file version and remembered with the file's
own hash), which the helper checks as it lands, so that putting the bundle in place needs
no second read of it there. On a terminal the copy shows how far it got (progress.py).
The agent then gets the bundle's dirs first on its PATH (CreateAgent.path_dirs).
docs/concepts/agent-clis-on-hosts.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

from mngr.remote_helper import files as wire_files
from mngr.remote_helper.cli_bundles import manifest_key, version_numbers

from .agent_types import CLI_MODES, AgentType
from .channel import protocol
from .errors import MngrError, RemoteError
from .hosts import HostHandle
from .link_rate import FIRST_BATCH_BYTES, LinkRate
from .progress import Progress

PART_BYTES = 8 * 1024 * 1024
# A file's first part is small: the bundle's first parts measure the link before the rest
# is sent compressed or not, and on a slow link that should not take long.
FIRST_PART_BYTES = FIRST_BATCH_BYTES
PARTS_IN_FLIGHT = 4
HASHES_FILE = "agent-cli-hashes.json"
# How files are cut into parts: remembered part hashes of another cut are not used.
_PART_LAYOUT = f"{FIRST_PART_BYTES}+{PART_BYTES}"
_Reply = TypeVar("_Reply")

_ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}
_NPM_ARCH = {"x86_64": "x64", "aarch64": "arm64"}
_TRIPLES = {"x86_64": "x86_64-unknown-linux-musl", "aarch64": "aarch64-unknown-linux-musl"}


@dataclass(frozen=True)
class BundleFile:
    relative: str  # where it lands in the bundle
    source: Path
    sha256: str
    size: int
    mode: int
    part_sha256s: tuple[str, ...] = ()  # of each part of part_spans(size), in order

    def wire(self) -> list[object]:
        """The file's manifest entry (what the bundle's key is made of)."""
        return [self.relative, self.sha256, self.size, self.mode]


@dataclass(frozen=True)
class Bundle:
    """What one machine needs of a CLI: its files, the one that runs, the dirs for PATH."""

    program: str
    version: str
    machine: str
    files: tuple[BundleFile, ...]
    entry: str
    path_dirs: tuple[str, ...]

    @property
    def key(self) -> str:
        return str(manifest_key([f.wire() for f in self.files]))

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class Supply:
    """What ``ensure_cli`` did (or, dry, would do) for one agent's CLI on one host."""

    program: str
    mode: str
    source: str  # "host" (its own), "cache" (landed earlier), "copy" (sent now), "none" (not provided)
    path_dirs: list[str] = field(default_factory=list)
    version: str = ""  # the user's
    host_version: str = ""  # the host's own, if it has one
    machine: str = ""
    bytes_to_send: int = 0


def cli_program(agent_type_cli: str, binary: str | None) -> str | None:
    """The program mngr may provide for an agent whose type's CLI is ``agent_type_cli``
    ("claude", "codex", "" for none) and whose command runs ``binary``: only that CLI by
    its own name (a wrapper or a path of the user's is theirs to provide)."""
    if agent_type_cli and binary == agent_type_cli:
        return agent_type_cli
    return None


def provide_for_agent(handle: HostHandle, agent_type: AgentType | None, binary: str | None) -> list[str]:
    """The dirs an agent of ``agent_type`` running ``binary`` on the handle's host needs first
    on its PATH for its CLI, after making sure they hold it. The local host: none, ever (the
    user's own PATH is the agent's)."""
    if agent_type is None or handle.provider_name == "local":
        return []
    program = cli_program(agent_type.cli_program, binary)
    if program is None:
        return []
    return ensure_cli(handle, program, agent_type.cli).path_dirs


def ensure_cli(handle: HostHandle, program: str, mode: str, dry_run: bool = False,
               progress_to: TextIO | None = None) -> Supply:
    """Make sure ``program`` (claude or codex) runs on the handle's host; return where.
    ``dry_run``: only ask, and say what would be done (sends nothing, changes nothing there):
    the plan a provision of a running agent's host shows. A copy shows its progress on
    ``progress_to`` (default stderr) when that is a terminal."""
    if mode not in CLI_MODES:
        raise MngrError(f"cli = {mode!r} is not one of {', '.join(CLI_MODES)}")
    if mode == "host":
        return Supply(program, mode, "none")
    bundles = user_bundles(program)
    version = next(iter(bundles.values())).version
    request = protocol.EnsureCli(program=program, version=version, mode=mode,
                                 bundles={machine: [b.key, b.size, list(b.path_dirs)] for machine, b in bundles.items()})
    place = _ask(handle, program, lambda: handle.ensure_cli(request))
    if not place.source and place.shared_dir and not dry_run:
        # The host sees this machine's bundles (a container on a local engine): put it there.
        keep_shared(bundles[place.machine])
        place = _ask(handle, program, lambda: handle.ensure_cli(request))
    supply = Supply(program, mode, place.source or "copy", list(place.dirs), version, place.host_version, place.machine)
    if place.source:
        return supply
    bundle = bundles[place.machine]
    supply.bytes_to_send = bundle.size
    if dry_run:
        return supply
    _send(handle, bundle, place.upload, progress_to)
    return supply


def _ask(handle: HostHandle, program: str, call: Callable[[], _Reply]) -> _Reply:
    """``call()``, a refusal by the host's helper said as what it means for the create."""
    try:
        return call()
    except RemoteError as exc:
        raise MngrError(f"cannot provide {program} on host {handle.host!r}: {exc.detail}") from None


def _send(handle: HostHandle, bundle: Bundle, upload: str, progress_to: TextIO | None) -> None:
    rate = LinkRate()

    def put(bundle_file: BundleFile, offset: int, data: bytes, digest: str, compress: bool) -> float:
        """Send one part; the seconds of its round trip that were the link's (not the host's)."""
        blob, compressed = wire_files.pack(data) if compress else (data, False)
        part = protocol.PutCliPart(key=bundle.key, upload=upload, path=bundle_file.relative, offset=offset,
                                   length=len(data), sha256=digest, compressed=compressed)
        started = time.perf_counter()
        stored = _ask(handle, bundle.program, lambda: handle.put_cli_part(part, blob))
        progress.advance(len(data))
        return time.perf_counter() - started - stored.seconds

    with Progress(f"copying {bundle.program} {bundle.version} to {handle.host}", total=bundle.size, unit="bytes",
                  stream=progress_to) as progress, \
            ThreadPoolExecutor(PARTS_IN_FLIGHT) as pool:
        pending: deque[Future[float]] = deque()
        measured_bytes, measured_seconds = 0, 0.0
        try:
            for bundle_file, offset, data, digest in _parts(bundle):
                if measured_bytes < FIRST_BATCH_BYTES:
                    # Alone and as they are, until a first part's worth has crossed: they
                    # measure the link (a small file first, as codex's manifest is, alone
                    # would measure its latency).
                    measured_seconds += put(bundle_file, offset, data, digest, False)
                    measured_bytes += len(data)
                    rate.observe(measured_bytes, measured_seconds)
                    continue
                if len(pending) >= PARTS_IN_FLIGHT:
                    pending.popleft().result()
                pending.append(pool.submit(put, bundle_file, offset, data, digest, rate.compress))
            while pending:
                pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
        finish = protocol.FinishCli(key=bundle.key, upload=upload, program=bundle.program, version=bundle.version,
                                    entry=bundle.entry,
                                    files=[[*f.wire(), list(f.part_sha256s)] for f in bundle.files])
        _ask(handle, bundle.program, lambda: handle.finish_cli(finish))


def keep_shared(bundle: Bundle) -> Path:
    """The bundle under its key in this machine's shared dir (paths.agent_clis_dir), its
    files hard links to the user's install where the file system allows (else copies),
    made aside and renamed into place whole."""
    import uuid

    from .paths import agent_clis_dir

    shared = Path(agent_clis_dir())
    shared.mkdir(parents=True, exist_ok=True)
    shared.chmod(0o755)  # the mount's root: whoever a container runs as enters it
    root = shared / bundle.key
    if root.is_dir():
        return root
    aside = shared / ".parts" / f"{bundle.key}-{uuid.uuid4().hex[:16]}"
    try:
        for bundle_file in bundle.files:
            target = aside / bundle_file.relative
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            try:
                os.link(bundle_file.source, target)
            except OSError:
                shutil.copyfile(bundle_file.source, target)
                target.chmod(bundle_file.mode)
        for directory in [aside, *(p for p in aside.rglob("*") if p.is_dir())]:
            directory.chmod(0o755)  # whoever a container runs as reads it
        try:
            aside.rename(root)
        except OSError:
            if not root.is_dir():
                raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return root


def part_spans(size: int) -> list[tuple[int, int]]:
    """How a file of ``size`` bytes is cut into parts: (offset, length) each; an empty file
    is one empty part."""
    spans = [(0, min(size, FIRST_PART_BYTES))]
    offset = spans[0][1]
    while offset < size:
        spans.append((offset, min(PART_BYTES, size - offset)))
        offset += spans[-1][1]
    return spans


def _parts(bundle: Bundle) -> Iterator[tuple[BundleFile, int, bytes, str]]:
    for bundle_file in bundle.files:
        spans = part_spans(bundle_file.size)
        if len(spans) != len(bundle_file.part_sha256s):
            raise MngrError(f"{bundle_file.source} changed while {bundle.program} was being copied; try again")
        with open(bundle_file.source, "rb") as handle:
            for (offset, length), digest in zip(spans, bundle_file.part_sha256s, strict=True):
                data = handle.read(length)
                if len(data) != length:
                    raise MngrError(f"{bundle_file.source} changed while {bundle.program} was being copied; "
                                    f"try again")
                yield bundle_file, offset, data, digest


def user_bundles(program: str, search_path: str | None = None) -> dict[str, Bundle]:
    """The bundles of the user's own install of ``program`` (first on PATH), by machine."""
    found = shutil.which(program, path=search_path if search_path is not None else os.environ.get("PATH"))
    if found is None:
        raise MngrError(f"{program} is not installed here (not on PATH): mngr provides a host with the "
                        f"user's own {program}; install it, or set cli = \"host\" for this agent type")
    install = Path(os.path.realpath(found))
    if program == "claude":
        bundles = _claude_bundles(install)
    elif program == "codex":
        bundles = _codex_bundles(install)
    else:
        raise MngrError(f"mngr cannot provide {program!r} on a host (only claude and codex)")
    if not bundles:
        raise MngrError(f"the {program} at {install} has no native Linux binary to copy to a host "
                        f"(set cli = \"host\" for this agent type to use the host's own)")
    return bundles


def _claude_bundles(install: Path) -> dict[str, Bundle]:
    """claude's npm package keeps the binary for this machine in bin/claude.exe and each
    platform's in @anthropic-ai/claude-code-linux-<arch>/claude; a native install is one file."""
    candidates = [install]
    package = _enclosing_package(install, "claude-code")
    version = ""
    if package is not None:
        version = _package_version(package / "package.json")
        scope = package.parent
        candidates += [scope / f"claude-code-linux-{arch}" / "claude" for arch in _NPM_ARCH.values()]
        candidates += [package / "node_modules" / "@anthropic-ai" / f"claude-code-linux-{arch}" / "claude"
                       for arch in _NPM_ARCH.values()]
    bundles: dict[str, Bundle] = {}
    for candidate in candidates:
        machine = _elf_machine(candidate)
        if machine is None or machine in bundles:
            continue
        bundle_version = version or _run_version(candidate)
        bundles[machine] = Bundle("claude", bundle_version, machine, (_bundle_file("claude", candidate),),
                                  "claude", (".",))
    return bundles


# What codex looks for next to its binary (its codex-package.json names them): rg on
# PATH, the sandbox's bwrap, and the code-mode host, without which its interactive
# session's background server refuses to start ("local Codex package is missing
# bin/codex-code-mode-host"). Its voice runtime is an optional feature.
_CODEX_PARTS = ("codex-package.json", "bin/codex", "bin/codex-code-mode-host", "codex-path/rg",
                "codex-resources/bwrap")


def _codex_bundles(install: Path) -> dict[str, Bundle]:
    roots: list[Path] = []
    if install.name == "codex" and install.parent.name == "bin" and _elf_machine(install):
        roots.append(install.parent.parent)  # a package dir itself: vendor/<triple>/bin/codex
    package = _enclosing_package(install, "codex")
    if package is not None:
        for arch, npm_arch in _NPM_ARCH.items():
            for scope in (package.parent, package / "node_modules" / "@openai"):
                roots.append(scope / f"codex-linux-{npm_arch}" / "vendor" / _TRIPLES[arch])
            roots.append(package / "vendor" / _TRIPLES[arch])
    bundles: dict[str, Bundle] = {}
    for root in roots:
        machine = _elf_machine(root / "bin" / "codex")
        if machine is None or machine in bundles:
            continue
        version = _package_version(root / "codex-package.json") or _run_version(root / "bin" / "codex")
        files = []
        for part in _CODEX_PARTS:
            path = root / part
            if path.is_dir():
                files += [_bundle_file(str(inner.relative_to(root)), inner) for inner in sorted(path.rglob("*"))
                          if inner.is_file()]
            elif path.is_file():
                files.append(_bundle_file(part, path))
        bundles[machine] = Bundle("codex", version, machine, tuple(files), "bin/codex", ("bin", "codex-path"))
    return bundles


def _enclosing_package(path: Path, name: str) -> Path | None:
    for parent in path.parents:
        if parent.name == name and parent.parent.name in ("@anthropic-ai", "@openai"):
            return parent
    return None


def _package_version(path: Path) -> str:
    try:
        version = json.loads(path.read_text()).get("version", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return version if isinstance(version, str) else ""


def _run_version(path: Path) -> str:
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if version_numbers(done.stdout) else ""


def _elf_machine(path: Path) -> str | None:
    """The machine of a Linux ELF executable (None for anything else)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[5] != 1:  # little-endian only
        return None
    return _ELF_MACHINES.get(int.from_bytes(header[18:20], "little"))


def _bundle_file(relative: str, path: Path) -> BundleFile:
    stat = path.stat()
    digest, part_digests = _sha256s(path, stat)
    return BundleFile(relative, path, digest, stat.st_size, 0o755 if stat.st_mode & 0o111 else 0o644,
                      part_digests)


def _sha256s(path: Path, stat: os.stat_result) -> tuple[str, tuple[str, ...]]:
    """The file's sha256 and its parts' (part_spans), from one read, remembered by path, size
    and mtime: hashing 300 MB on every create would cost more than the rest of it."""
    from .paths import changing_state_json, read_state_dict

    key = str(path)
    stamp = [stat.st_size, stat.st_mtime_ns]
    entry = read_state_dict(HASHES_FILE).get(key)
    if isinstance(entry, list) and len(entry) == 5 and entry[:2] == stamp and entry[3] == _PART_LAYOUT:
        return str(entry[2]), tuple(str(d) for d in entry[4])
    whole = hashlib.sha256()
    part_digests = []
    with open(path, "rb") as handle:
        for _, length in part_spans(stat.st_size):
            data = handle.read(length)
            whole.update(data)
            part_digests.append(hashlib.sha256(data).hexdigest())
    with changing_state_json(HASHES_FILE) as known:
        known[key] = [*stamp, whole.hexdigest(), _PART_LAYOUT, part_digests]
    return whole.hexdigest(), tuple(part_digests)
