"""The messages exchanged with the helper, as msgspec Structs in tagged unions.

The wire form of each message is a JSON object whose ``type`` field names the Struct. The
helper keeps its own copy of this schema (``mngr.remote_helper.wire.MESSAGES``);
``tests/unit/test_protocol_contract.py`` keeps the two identical. New fields must get defaults
so that a newer controller can talk to an older helper and back.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

HEADER = struct.Struct(">III")  # request id, body length, blob length
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_BLOB_BYTES = 512 * 1024 * 1024


class AgentInfo(msgspec.Struct, kw_only=True):
    id: str
    name: str
    type: str
    state: str
    command: str
    work_dir: str
    created_at: str
    labels: dict[str, str] = {}
    # How mngr made the work dir (controller/work_dirs.py WorkDirOrigin): {} for one given
    # with --work-dir, or made by an older mngr.
    work_dir_origin: dict[str, str] = {}
    archived: bool = False  # kept out of default listings, refused a start (mngr archive)
    pid: int | None = None
    exit_status: int | None = None
    idle_seconds: float | None = None
    problem: str | None = None
    # What a WAITING agent of a type that tells is waiting on: "input", "permission", "trust",
    # "api-key", "login", "bypass-permissions" or another dialog its type names; None when
    # its type cannot tell, or it is not waiting.
    waiting_reason: str | None = None
    waiting_detail: str = ""  # what the dialog asks, as shown on the screen
    # The session's windows beside the agent's: {name: command}, in window order.
    extra_windows: dict[str, str] = {}
    # The URLs it serves, {name: URL as on its host}: declared at create, then the ones it
    # published (controller/agent_urls.py).
    urls: dict[str, str] = {}


class HostIdle(msgspec.Struct, kw_only=True):
    """A host's idle status: what `mngr list` shows per host."""

    idle_timeout: float | None = None  # None: idle shutdown is off
    idle_mode: str = ""
    idle_seconds: float | None = None  # since the newest activity that counts
    last_activity: str = ""  # the source of that activity
    last_activity_agent: str = ""
    last_shutdown_at: str = ""  # when the watcher last stopped the host ("" never)
    last_shutdown_reason: str = ""


# Requests


class Ping(msgspec.Struct, tag=True):
    """Answered with Pong; any blob is echoed back."""


class GetHelperInfo(msgspec.Struct, tag=True):
    pass


class ListAgents(msgspec.Struct, tag=True):
    quiet_seconds: float = 10.0


class FindAgent(msgspec.Struct, tag=True, kw_only=True):
    """The agents recorded on the host under ``name`` (none, one, or, by accident, more),
    from their records alone: answered with AgentList, whose AgentInfos have an empty
    ``state``, no pid and no idle time (tmux is not asked) and no host status. For a
    command that needs the agent's host and work dir, not what the agent is doing."""

    name: str


class CreateAgent(msgspec.Struct, tag=True, kw_only=True):
    name: str
    agent_type: str
    command: str
    binary: str | None = None
    work_dir: str
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    # The environment the agent starts from (the user's, for the local host); None means the
    # helper's own environment, as on a remote host.
    base_env: dict[str, str] | None = None
    # The umask the agent runs with (the user's, for the local host); None: the helper's.
    umask: int | None = None
    # How the helper talks to this agent type (see controller/agent_types.py Interaction.wire);
    # None: type the text and press Enter, as for any command.
    interaction: dict[str, Any] | None = None
    # Directories put first on the agent's PATH (an agent CLI mngr provided: EnsureCli),
    # kept in its record so that every later start has them too.
    path_dirs: list[str] = []
    # A config dir of the agent CLI's own, made in the agent's dir (controller/agent_config.py
    # AgentConfigPlan.wire): {"dir", "env_var", "files": {name: text}, "env": {KEY: value}}.
    # The files are written 0600; None: the agent uses the CLI config it finds on the host.
    agent_config: dict[str, Any] | None = None
    # How mngr made the work dir, kept in the record (controller/work_dirs.py WorkDirOrigin).
    work_dir_origin: dict[str, str] | None = None
    # More windows in the agent's session, {name: command} in order: each runs its command
    # in the work dir with the agent's environment, and comes back with every start.
    extra_windows: dict[str, str] = {}
    # The URLs the agent serves, {name: http(s) URL as on the host}, in order (agent_urls.py).
    urls: dict[str, str] = {}
    # Files landed before the agent starts: [dest, kind ("f" or "d"), mode, mtime_ns, blob
    # offset, length]. A relative dest is in the work dir, "~/..." in the home dir. All of
    # them land or none does; an existing file at a dest is refused unless
    # ``overwrite_uploads`` (one with the same bytes is not: only its mode is set).
    uploads: list[list[Any]] = []
    overwrite_uploads: bool = False


class WriteAgentConfig(msgspec.Struct, tag=True, kw_only=True):
    """Write the agent's own CLI config dir again (CreateAgent.agent_config), its work dir
    trusted there as at create if it was then, and/or the dirs first on its PATH
    (CreateAgent.path_dirs); None leaves either as it is. Answered with Done. The files
    change at once; the variables and the PATH reach the agent at its next start."""

    name: str
    agent_config: dict[str, Any] | None = None
    path_dirs: list[str] | None = None


class ReadAgentConfig(msgspec.Struct, tag=True, kw_only=True):
    """What the agent's own CLI config dir holds now, as hashes salted with ``salt``
    (never a value); answered with AgentConfigState."""

    name: str
    salt: str


class StopAgent(msgspec.Struct, tag=True):
    """End the agent's session and every process it started: SIGTERM, ``grace`` seconds,
    then SIGKILL (remote_helper/processes.py)."""

    name: str
    grace: float = 2.0


class StartAgent(msgspec.Struct, tag=True):
    name: str
    base_env: dict[str, str] | None = None
    umask: int | None = None


class DestroyAgent(msgspec.Struct, tag=True, kw_only=True):
    """End the agent and remove its record; the work dir too when mngr made it (it lies
    in ``$MNGR_HOST_DIR/work/``), unless ``keep_work_dir``."""

    name: str
    keep_work_dir: bool = False
    grace: float = 2.0  # as StopAgent's


class RenameAgent(msgspec.Struct, tag=True, kw_only=True):
    """Give the agent ``new_name``: its record and its tmux session (renamed in place, so a
    running agent goes on running); refused if the host has an agent or a session of that
    name. Answered with AgentReply."""

    name: str
    new_name: str


class SetLabels(msgspec.Struct, tag=True, kw_only=True):
    """Add (or change) the labels ``add``, then drop the keys ``remove``; answered with
    AgentReply."""

    name: str
    add: dict[str, str] = {}
    remove: list[str] = []


class SetArchived(msgspec.Struct, tag=True, kw_only=True):
    """Archive the agent (``archived``: stopped first, as StopAgent with ``grace``, if it
    runs) or unarchive it (it stays stopped); answered with AgentReply."""

    name: str
    archived: bool
    grace: float = 2.0


class SendMessage(msgspec.Struct, tag=True, kw_only=True):
    name: str
    text: str
    wait_ready: bool = False
    ready_pattern: str | None = None
    ready_quiet_seconds: float = 1.0
    ready_timeout: float = 60.0


class AwaitInput(msgspec.Struct, tag=True, kw_only=True):
    """Wait until an agent whose type tells shows its input box (Done); an Error names the
    dialog that holds it instead, or says that it did not get there within ``timeout``."""

    name: str
    timeout: float = 60.0


class CapturePane(msgspec.Struct, tag=True, kw_only=True):
    """Answered with Captured; the blob is the pane's text (with ``full``, its scrollback too)."""

    name: str
    full: bool = False


class ReadOutput(msgspec.Struct, tag=True, kw_only=True):
    """A piece of the agent's output log (``source="output"``; "output-previous" is the older
    part that rotation moved aside) or of its Claude Code session log ("claude").

    With ``offset``, the bytes from there on; without, the last ``tail_lines`` lines (all
    when 0), never more than ``max_bytes``.
    """

    name: str
    source: str = "output"
    offset: int | None = None
    tail_lines: int = 0
    max_bytes: int = 8 * 1024 * 1024


class NoteActivity(msgspec.Struct, tag=True, kw_only=True):
    name: str
    source: str


class SetIdleSettings(msgspec.Struct, tag=True, kw_only=True):
    """Change the host's idle settings (None: leave as is); answered with IdleSettings.

    ``mode`` "disabled" turns idle shutdown off. With ``only_if_unset``, a host that has
    settings keeps them (a provider's default never overrides the user's choice). With
    ``dry_run``, the settings are checked (and refused where no watcher can run) but not
    written; the reply is what they would be.
    """

    timeout: float | None = None
    mode: str | None = None
    sources: list[str] | None = None
    command: str | None = None
    stop_grace: float | None = None
    only_if_unset: bool = False
    dry_run: bool = False


class KeepAlive(msgspec.Struct, tag=True, kw_only=True):
    """Count the agent's host as active for ``seconds`` from now."""

    name: str
    seconds: float


class ProbePorts(msgspec.Struct, tag=True, kw_only=True):
    """Which of ``ports`` accept a TCP connection on the host's loopback (127.0.0.1 or ::1);
    answered with PortsOpen. `mngr open` asks before it makes a port reachable from here."""

    ports: list[int]


class ReadWatcherLog(msgspec.Struct, tag=True, kw_only=True):
    """The last ``tail_lines`` decisions of the host's idle watcher; answered with Captured."""

    tail_lines: int = 20


class GetManifest(msgspec.Struct, tag=True, kw_only=True):
    """The agent's work dir (or, with no name, ``work_dir``) as a manifest; answered with
    Manifest (see remote_helper/files.py)."""

    name: str
    include_ignored: bool = False
    work_dir: str = ""
    with_uncommitted: bool = False  # also list the work dir's uncommitted changes (runs git)
    known: str = ""  # the tag of the manifest the controller kept: "unchanged" spares sending it


class WriteFiles(msgspec.Struct, tag=True, kw_only=True):
    """Land files in the agent's work dir; answered with Written.

    ``dirs``: [path, mode]; ``links``: [path, target]; ``parts``: [path, mode, mtime_ns,
    blob offset, length, zlib-compressed, offset in the file, final]; ``deletes``: paths;
    ``finish_dirs``: [path, mode, mtime_ns], directories given their own mode and mtime
    last (a read-only one stays writable to its owner until its files landed, and landing
    them changes its mtime). Applied in that order. A file is
    renamed into place with its final part. An entry that cannot land is skipped (Written
    says which); the host never writes or deletes its own state (remote_helper/guarded.py).
    """

    name: str
    dirs: list[list[Any]] = []
    links: list[list[Any]] = []
    parts: list[list[Any]] = []
    deletes: list[str] = []
    finish_dirs: list[list[Any]] = []
    work_dir: str = ""  # with no name: a work dir made by PrepareWorkDir
    known: str = ""  # the tag the controller believes the work dir's manifest has before this
    # Manifest entries ([path, kind, mode, size, mtime_ns, link target]; kind "-": nothing
    # there) a path must still match at the moment its file or link is renamed into place
    # or it is deleted; else it is skipped as "changed meanwhile" (compare-and-swap).
    expect: list[list[Any]] = []
    # A push with several batches in flight: the host applies batch ``sequence`` (from 0) of
    # ``session`` after the one before it, starting from the tag that one left (``known``
    # counts for the first only); one after a failed batch fails too. ``last`` ends it.
    session: str = ""
    sequence: int = 0
    last: bool = False


class PrepareWorkDir(msgspec.Struct, tag=True, kw_only=True):
    """Make a new, empty work dir for agent ``name`` (``path``, or by default
    ``$MNGR_HOST_DIR/work/NAME``); a blob is a git bundle to clone into it. With ``remove``,
    take away the one made earlier. Answered with WorkDir."""

    name: str
    path: str = ""
    remove: bool = False
    branch: str = ""  # to check out after the bundle's branches are in
    new_branch: str = ""  # instead: made at the bundle's HEAD and checked out
    clone_url: str = ""  # instead of a bundle: a git URL the host clones


class GetWorkState(msgspec.Struct, tag=True, kw_only=True):
    """What removing the agent's work dir would lose: answered with WorkState."""

    name: str


class GetAgentSpec(msgspec.Struct, tag=True, kw_only=True):
    """What it takes to make another agent like this one; answered with AgentSpec."""

    name: str


class GetGitBundle(msgspec.Struct, tag=True, kw_only=True):
    """Every ref of the git repository at the top of the agent's work dir, as a bundle (the
    blob of a Captured reply; empty when there is none)."""

    name: str


class ReadFiles(msgspec.Struct, tag=True, kw_only=True):
    """The contents of files in the agent's work dir; answered with FileData. With a
    ``length``: at most that many bytes from ``offset`` of the one file in ``paths`` (a
    large file travels in such parts, so no reply holds more than one part). ``compress``:
    zlib where it saves (controller/link_rate.py says when that pays)."""

    name: str
    paths: list[str]
    offset: int = 0
    length: int = 0
    compress: bool = True


class WatchChanges(msgspec.Struct, tag=True, kw_only=True):
    """The paths of the agent's work dir changed after ``cursor``, waiting up to ``wait``
    seconds for one; answered with Changes (see remote_helper/change_feed.py)."""

    name: str
    cursor: str = ""  # "": the feed's current cursor, with overflow set
    wait: float = 0.0


class ReadEvents(msgspec.Struct, tag=True, kw_only=True):
    """The events of every log of the host after ``cursor`` (remote_helper/events.py), in
    time order, at most ``max_lines``; with nothing new, waiting up to ``wait`` seconds for
    some while noting agents' state changes. ``since``: an ISO time (as the logs write it,
    UTC), older events left out. Answered with Events."""

    cursor: str = ""  # "": from the start of every log; "end": from now on
    since: str = ""
    wait: float = 0.0
    quiet_seconds: float = 10.0
    max_lines: int = 1000


class StatPaths(msgspec.Struct, tag=True, kw_only=True):
    """What ``paths`` of the agent's work dir are now; answered with Changes (no cursor),
    whose blob lists those that exist."""

    name: str
    paths: list[str]


class GetSignatures(msgspec.Struct, tag=True, kw_only=True):
    """Signatures of the file at ``path`` in the agent's work dir (or ``work_dir``) for a
    delta push; answered with Signatures (see remote_helper/delta.py)."""

    name: str
    path: str
    work_dir: str = ""


class WriteDelta(msgspec.Struct, tag=True, kw_only=True):
    """Part of a delta push: the blob's operations (zlib-compressed if ``compressed``) played
    against the file at ``path`` as it was at ``old_version`` into its part file from
    ``offset`` of the new file if what they make has the ``digest`` (hex: the SHA-256 of
    the SHA-1s of its blocks and literal runs, see remote_helper/delta.py); with ``final``,
    landed with ``mode`` and ``mtime_ns``. Answered with Written; a mismatch is a skipped
    entry."""

    name: str
    path: str
    old_version: str
    block: int
    offset: int = 0
    final: bool = False
    mode: int = 0o644
    mtime_ns: int = 0
    digest: str = ""
    compressed: bool = False
    work_dir: str = ""
    known: str = ""


class ReadDelta(msgspec.Struct, tag=True, kw_only=True):
    """The delta of the file at ``path`` in the agent's work dir against the controller's
    old file of ``old_size`` bytes whose signatures, in blocks of ``block``, are the blob;
    answered with DeltaData. With ``offset`` and ``length`` (0: to its end), of that part
    of the file only: a large file's parts are walked and rebuilt at the same time. With a
    ``signatures_tag``, the helper keeps the signatures for the requests of the other parts,
    which name the tag and send no blob."""

    name: str
    path: str
    block: int
    old_size: int
    literal_budget: int = 0
    offset: int = 0
    length: int = 0
    signatures_tag: str = ""


class ExecStart(msgspec.Struct, tag=True, kw_only=True):
    """Run a shell command in the agent's work dir with its environment."""

    name: str
    command: str


class ExecRead(msgspec.Struct, tag=True, kw_only=True):
    """Wait up to ``wait`` seconds for output; the blob is stdout then stderr."""

    exec_id: int
    wait: float = 0.5


class ExecKill(msgspec.Struct, tag=True, kw_only=True):
    exec_id: int


# Replies


class Pong(msgspec.Struct, tag=True):
    pass


class HelperInfo(msgspec.Struct, tag=True, kw_only=True):
    version: str
    pid: int
    python: str
    hostname: str
    host_dir: str
    daemon_socket: str = ""  # the host daemon's unix socket on that host, "" if none


class AgentList(msgspec.Struct, tag=True):
    agents: list[AgentInfo] = []
    host: HostIdle | None = None  # None from helpers without idle detection


class AgentReply(msgspec.Struct, tag=True):
    agent: AgentInfo


class Done(msgspec.Struct, tag=True):
    pass


class Manifest(msgspec.Struct, tag=True, kw_only=True):
    """The blob is the zlib-compressed wire manifest (remote_helper/files.py), empty when
    ``unchanged``: the manifest is still the one tagged with the request's ``known``. With
    ``changes_only``, it holds only the entries of the paths changed since ``known`` and
    ``gone`` the paths removed since (with everything below them); an entry of another
    kind than a directory also replaces what was below it."""

    root: str
    uncommitted: list[str] = []
    tag: str = ""  # this state of the manifest, kept by the host daemon ("": not kept)
    unchanged: bool = False
    guarded: list[str] = []  # mngr's own state below the root: never listed, written or deleted
    home: bool = False  # the root is the home dir: its top-level dot entries are never deleted
    changes_only: bool = False
    gone: list[str] = []


class Written(msgspec.Struct, tag=True, kw_only=True):
    """WriteFiles carried out. ``tag``: the manifest's new tag, when the host took the write
    into the manifest it keeps and that manifest had the request's ``known`` tag before.
    ``skipped``: [path, reason] of the entries that could not land (the others did).
    ``seconds``: how long the host worked on it (the rest of the round trip is the link's)."""

    tag: str = ""
    skipped: list[list[str]] = []
    seconds: float = 0.0


class AgentSpec(msgspec.Struct, tag=True, kw_only=True):
    agent_type: str
    command: str
    binary: str | None = None
    env: dict[str, str] = {}  # the --env values it was created with
    labels: dict[str, str] = {}
    work_dir: str
    branch: str = ""  # checked out in its work dir (a commit id when detached; "" if no git)
    extra_windows: dict[str, str] = {}  # CreateAgent.extra_windows: a copy gets them too
    urls: dict[str, str] = {}  # CreateAgent.urls (not the ones the agent published)


class AgentConfigState(msgspec.Struct, tag=True, kw_only=True):
    """ReadAgentConfig's answer (remote_helper/agent_config.py state_of). ``files``: name ->
    {"sha256": salted hash of its text, "tree": for a JSON object, its keys with each value
    that is not an object replaced by its salted hash, "written": the salted hash of the
    sha256 of the text mngr last wrote (None if not known)}; ``env``: variable -> salted
    hash; ``pending``: the agent's process was launched without the variables or the
    ``path_dirs`` there now."""

    configured: bool = False  # the agent has a config dir of its own
    env_var: str = ""
    files: dict[str, Any] = {}
    env: dict[str, str] = {}
    written_files: list[str] = []  # every file the last write put there (some may be gone)
    pending: bool = False
    binary: str | None = None  # what the agent's command runs
    path_dirs: list[str] = []  # first on its PATH: the agent CLI mngr provided


class WorkDir(msgspec.Struct, tag=True, kw_only=True):
    path: str


class WorkState(msgspec.Struct, tag=True, kw_only=True):
    """The git state of an agent's work dir (empty when it is no repository's top level):
    the paths with uncommitted changes (wire form, untracked ones included) and
    ``{ref: commit}`` for HEAD and every branch."""

    uncommitted: list[str] = []
    heads: dict[str, str] = {}
    # Commits of HEAD and the branches that no remote-tracking ref holds; -1 when there is
    # no remote-tracking ref (or no repository).
    unpushed: int = -1


class Progress(msgspec.Struct, tag=True, kw_only=True):
    """Sent unasked, as request 0, while a large frame arrives at the helper: the channel
    is moving even when a slow link's buffers hide it (see RpcClient)."""


class Signatures(msgspec.Struct, tag=True, kw_only=True):
    """The blob holds the signature records of a file of ``size`` bytes at ``version`` in
    blocks of ``block``; ``block`` 0: no file there worth a delta."""

    block: int = 0
    size: int = 0
    version: str = ""


class DeltaData(msgspec.Struct, tag=True, kw_only=True):
    """The blob holds a delta's operations (zlib-compressed if ``compressed``) rebuilding the
    file of ``size`` bytes, ``mode`` and ``mtime_ns``, what they make having the ``digest``
    (hex, as WriteDelta's), the file's version having been ``version`` throughout. ``too_different``: the delta would carry
    more than the budget of literal bytes (nothing in the blob); ``skipped``: [path, reason]
    when the file could not be read."""

    version: str = ""
    size: int = 0
    mode: int = 0
    mtime_ns: int = 0
    digest: str = ""
    compressed: bool = False
    too_different: bool = False
    skipped: list[list[str]] = []


class FileData(msgspec.Struct, tag=True, kw_only=True):
    """``files``: [path, blob offset, length, zlib-compressed, mode, mtime_ns, size], the
    mode, mtime and size being those of exactly the bytes sent (the file did not change
    while it was read); ``skipped``: [path, reason] of the files that could not be read or
    kept changing (the others were); ``versions``: for each of ``files``, a string that
    changes whenever the file may have (the parts of one file must all have the same).
    ``seconds``: how long the host worked on it (the rest of the round trip is the link's)."""

    files: list[list[Any]] = []
    skipped: list[list[str]] = []
    versions: list[str] = []
    seconds: float = 0.0


class Changes(msgspec.Struct, tag=True, kw_only=True):
    """What changed after the request's cursor: ``paths`` (each once), and in the blob the
    zlib-compressed wire manifest of those of them that exist now (the others are gone).
    ``overflow``: the host cannot say what changed; compare whole trees. An empty
    ``cursor``: the host keeps no feed (no host daemon, no inotify)."""

    cursor: str = ""
    paths: list[str] = []
    overflow: bool = False


class Events(msgspec.Struct, tag=True, kw_only=True):
    """Events after the request's cursor, each a JSON object with at least ``time``,
    ``event``, ``agent`` and ``agent_id``; ``cursor`` continues after them; ``more``: others
    are there already (ask again at once)."""

    events: list[dict[str, Any]] = []
    cursor: str = ""
    more: bool = False


class IdleSettings(msgspec.Struct, tag=True, kw_only=True):
    timeout: float | None
    mode: str
    sources: list[str]
    command: str
    stop_grace: float
    cpu_threshold: float


class Captured(msgspec.Struct, tag=True):
    pass


class OutputChunk(msgspec.Struct, tag=True, kw_only=True):
    path: str
    start: int
    end: int
    file_id: str


class ExecStarted(msgspec.Struct, tag=True, kw_only=True):
    exec_id: int


class ExecOutput(msgspec.Struct, tag=True, kw_only=True):
    stdout_length: int
    exit_code: int | None = None


class Error(msgspec.Struct, tag=True):
    code: str
    message: str


class CollectGarbage(msgspec.Struct, tag=True, kw_only=True):
    """Find (and unless ``dry_run`` remove) what interrupted operations left on the host
    (remote_helper/gc.py); files younger than ``min_age`` seconds are left alone."""

    dry_run: bool = True
    min_age: float = 600.0


class EnsureCli(msgspec.Struct, tag=True, kw_only=True):
    """Where the agent CLI ``program`` is on the host, or that it must be sent
    (remote_helper/cli_bundles.py). ``bundles``: machine -> [key, total size, path dirs
    relative to the bundle]; mode "auto" takes the host's own CLI if its version is at
    least ``version``, "copy" always the bundle."""

    program: str
    version: str
    mode: str = "auto"
    bundles: dict[str, Any] = {}


class PutCliPart(msgspec.Struct, tag=True, kw_only=True):
    """One part (the blob, zlib-compressed if ``compressed``) of one file of a bundle
    upload: ``length`` bytes whose sha256 is ``sha256``, written at ``offset`` once checked."""

    key: str
    upload: str
    path: str
    offset: int = 0
    length: int
    sha256: str
    compressed: bool = False


class FinishCli(msgspec.Struct, tag=True, kw_only=True):
    """Check an upload against ``files`` ([path, sha256, size, mode, [sha256 of each part in
    order]] each; the key is of the first four), see ``entry`` report ``version``, and put the
    bundle in place under its key."""

    key: str
    upload: str
    program: str
    version: str
    entry: str
    files: list[list[Any]] = []


class CliPlace(msgspec.Struct, tag=True, kw_only=True):
    """EnsureCli's answer. ``source``: "host" (the host's own CLI will do), "cache" (the
    bundle is there: ``dirs``), "" (send it as ``upload``)."""

    machine: str
    source: str = ""
    dirs: list[str] = []
    host_version: str = ""
    key: str = ""
    upload: str = ""
    # The host sees a read-only dir of the controller's own bundles (a container on a local
    # engine): a bundle put there is found without a copy.
    shared_dir: str = ""


class CliPartStored(msgspec.Struct, tag=True, kw_only=True):
    """PutCliPart's answer: the ``seconds`` the host spent on the part (checking and
    writing it), which a measure of the link leaves out."""

    seconds: float = 0.0


class PortsOpen(msgspec.Struct, tag=True, kw_only=True):
    """ProbePorts' answer: the ports asked about that accepted a connection."""

    listening: list[int] = msgspec.field(default_factory=list)


class Garbage(msgspec.Struct, tag=True, kw_only=True):
    """What CollectGarbage found: [kind, path or session name] each."""

    found: list[list[str]] = msgspec.field(default_factory=list)


Request = (
    Ping | GetHelperInfo | ListAgents | FindAgent | CreateAgent | StopAgent | StartAgent | DestroyAgent | SendMessage
    | RenameAgent | SetLabels | SetArchived
    | ReadAgentConfig
    | AwaitInput | CapturePane | ReadOutput | NoteActivity | WriteAgentConfig | SetIdleSettings | KeepAlive | ReadWatcherLog | GetManifest | WriteFiles
    | PrepareWorkDir | GetAgentSpec | GetWorkState | GetGitBundle | ReadFiles | WatchChanges | StatPaths | ReadEvents | GetSignatures | WriteDelta
    | ReadDelta | ExecStart | ExecRead | ExecKill | CollectGarbage | EnsureCli | PutCliPart | FinishCli
    | ProbePorts
)
Reply = (
    Pong | HelperInfo | AgentList | AgentReply | Done | IdleSettings | Manifest | AgentSpec | WorkDir | WorkState | FileData | Captured
    | AgentConfigState
    | Written | Changes | Events | Signatures | DeltaData | Progress
    | OutputChunk | ExecStarted | ExecOutput | Garbage | CliPlace | CliPartStored | Error
    | PortsOpen
)

REQUEST_TYPES: tuple[type[msgspec.Struct], ...] = Request.__args__  # type: ignore[attr-defined]
REPLY_TYPES: tuple[type[msgspec.Struct], ...] = Reply.__args__  # type: ignore[attr-defined]

_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(Request)
_reply_decoder = msgspec.json.Decoder(Reply)


def encode_frame(request_id: int, message: msgspec.Struct, blob: bytes = b"") -> bytes:
    body = _encoder.encode(message)
    return HEADER.pack(request_id, len(body), len(blob)) + body + blob


def encode_head(request_id: int, message: msgspec.Struct, blob_length: int) -> bytes:
    """A frame's header and body; its blob of ``blob_length`` bytes follows."""
    body = _encoder.encode(message)
    return HEADER.pack(request_id, len(body), blob_length) + body


def encode_body(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def decode_reply(body: bytes) -> Reply:
    return _reply_decoder.decode(body)


def decode_request(body: bytes) -> Request:
    return _request_decoder.decode(body)
