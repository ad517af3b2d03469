"""The helper's main loop: read frames from the channel, run requests, write replies.

Requests run concurrently (one thread each, except the trivial ones answered inline), so a
slow tmux call never holds up a Ping. Replies carry the request id they answer and may
arrive in any order. When the channel closes, requests already running are finished before
the process exits, so a departing controller never leaves a half-done change behind.
"""

import contextlib
import os
import select
import sys
import threading
import time
import zlib

from . import (
    agent_records,
    agents,
    change_feed,
    cli_bundles,
    daemon_address,
    daemon_launch,
    execs,
    files,
    guarded,
    idle,
    manifest_cache,
    operation_lock,
    output,
    processes,
    record_changes,
    state,
    tmux,
    write_order,
)
from .wire import (
    HEADER,
    FatalFrameError,
    ProtocolError,
    RequestFailed,
    decode_body,
    encode_body,
    encode_frame,
    parse_header,
)

# Requests that change agents: the idle watcher never stops the host while one runs.
_OPERATIONS = frozenset(
    ["CreateAgent", "StartAgent", "StopAgent", "DestroyAgent", "SendMessage", "ExecStart", "WriteFiles",
     "WriteDelta", "PrepareWorkDir", "WriteAgentConfig", "EnsureCli", "PutCliPart", "FinishCli", "RenameAgent",
     "SetLabels", "SetArchived"]
)
# Requests that are activity on the host, and the source they count as.
_ACTIVITY = {"CreateAgent": "create", "StartAgent": "start", "SendMessage": "message"}
# Message types that are replies: a peer sending one of these as a request made a mistake.
_REPLY_TYPES = frozenset(
    ["Pong", "HelperInfo", "AgentList", "AgentReply", "Done", "Captured", "OutputChunk", "ExecStarted",
     "ExecOutput", "Error", "IdleSettings", "Manifest", "FileData", "WorkDir", "AgentSpec", "WorkState", "Written", "Garbage",
     "AgentConfigState", "Changes", "Events", "Signatures", "DeltaData", "Progress", "CliPlace", "CliPartStored",
     "PortsOpen"]
)
_LOG_MAX_BYTES = 1024 * 1024


SPIN_SECONDS = 0.0002
# While a large frame arrives the helper says so this often: a slow link buffers megabytes
# (ssh's window), which the controller would otherwise see as a silent channel.
PROGRESS_SECONDS = 0.25
# Requests that hash a whole large file say they are at it this often (the work is bounded,
# so a helper that hangs elsewhere still falls silent and times out).
_HASHING = frozenset(["GetSignatures", "ReadDelta", "WriteDelta", "EnsureCli", "PutCliPart", "FinishCli"])
HEARTBEAT_SECONDS = 1.0


def _write_pieces(fd, pieces):
    """Write every byte of ``pieces`` to ``fd``, in one system call where the pipe takes it."""
    written = os.writev(fd, pieces)
    for piece in pieces:
        if written >= len(piece):
            written -= len(piece)
            continue
        view = memoryview(piece)[written:]
        written = 0
        while view:
            view = view[os.write(fd, view):]


def wait_briefly_for_input(fd):
    """Poll ``fd`` for a moment, yielding the CPU, before the caller blocks on it.

    A process blocked in read() on another CPU takes tens of microseconds to wake up on a
    VM; a peer that answers within the spin is read without that wake-up. Yielding keeps
    the spin from starving a peer that shares this CPU. Callers spin only while the peer
    has been answering within the window (see FrameReader): a remote or idle peer costs
    no CPU here.
    """
    deadline = time.monotonic() + SPIN_SECONDS
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0)[0]:
            return
        os.sched_yield()


_WRITABLE_BLOB = 1 << 20  # a push's batch at least this large is read into one buffer


class FrameReader(object):
    """Reads exact byte counts from a file descriptor through one growing buffer."""

    def __init__(self, fd):
        self._fd = fd
        self._buffer = bytearray()
        self._peer_is_quick = False

    def read_exact(self, count, progress=None, writable=False):
        """Return exactly ``count`` bytes, or None if the stream ends first; ``progress``
        is called every PROGRESS_SECONDS while they arrive. ``writable``: a bytearray will
        do (a push's batch, megabytes): read straight into it, with no buffer made and
        shrunk per read and no join of the pieces."""
        if len(self._buffer) >= count:
            data = bytes(self._buffer[:count])
            del self._buffer[:count]
            return data
        if writable:
            return self._read_into(count, progress)
        # A large frame's chunks are joined once, not grown into the buffer and copied out
        # of it again: a push's data is copied once here, not three times.
        chunks = [bytes(self._buffer)]
        have = len(self._buffer)
        self._buffer = bytearray()
        noted = time.monotonic()
        while have < count:
            if progress is not None and time.monotonic() - noted >= PROGRESS_SECONDS:
                progress()
                noted = time.monotonic()
            started = time.monotonic()
            if self._peer_is_quick:
                wait_briefly_for_input(self._fd)
            chunk = os.read(self._fd, max(65536, count - have))
            self._peer_is_quick = time.monotonic() - started < SPIN_SECONDS
            if not chunk:
                return None
            if have + len(chunk) > count:  # the start of the next frame: kept for it
                self._buffer += chunk[count - have:]
                chunk = chunk[:count - have]
            chunks.append(chunk)
            have += len(chunk)
        return b"".join(chunks)

    def _read_into(self, count, progress):
        data = bytearray(count)
        view = memoryview(data)
        have = len(self._buffer)
        view[:have] = self._buffer
        self._buffer = bytearray()
        noted = time.monotonic()
        while have < count:
            if progress is not None and time.monotonic() - noted >= PROGRESS_SECONDS:
                progress()
                noted = time.monotonic()
            started = time.monotonic()
            if self._peer_is_quick:
                wait_briefly_for_input(self._fd)
            read = os.readv(self._fd, [view[have:]])
            self._peer_is_quick = time.monotonic() - started < SPIN_SECONDS
            if not read:
                return None
            have += read
        return data


def _packed_entries(root, paths):
    """The zlib-compressed wire manifest of those of ``paths`` that exist (mngr's own state aside)."""
    guard = guarded.guard_for(root)
    entries = []
    for path in paths:
        files.check_path(path)
        entry = None if guard.hides(path) else files.current_entry(root, path)
        if entry is not None:
            entries.append(entry)
    return zlib.compress(files.encode_manifest(entries), 1)


class Server(object):
    def __init__(self, in_fd, out_fd, helper_hash, peer_pid=None):
        """``peer_pid``: the process at the other end of the channel, where known (a local
        socket's peer); stopping an agent never ends it, even if it runs as the agent."""
        self._reader = FrameReader(in_fd)
        self._spare = (peer_pid,) if peer_pid else ()
        self._out_fd = out_fd
        self._out_lock = threading.Lock()
        self._helper_hash = helper_hash
        self._workers = []
        self._commands = execs.CommandTable()
        self._write_order = write_order.WriteOrder()

    def send(self, request_id, message_type, fields, blob=b""):
        body = encode_body(message_type, fields)
        # The blob (a file's part: megabytes) goes as it is, not copied into one frame first.
        pieces = [HEADER.pack(request_id, len(body), len(blob)) + body, blob] if blob else \
            [encode_frame(request_id, body)]
        with self._out_lock:
            _write_pieces(self._out_fd, pieces)

    def serve(self):
        try:
            while self._serve_one():
                pass
        finally:
            # Commands started for `mngr exec` belong to this channel's controller.
            self._commands.kill_all()
            self._write_order.close()  # a batch waiting for one that never came gives up
            for worker in self._workers:
                worker.join()

    def _serve_one(self):
        header = self._reader.read_exact(HEADER.size)
        if header is None:
            return False
        try:
            request_id, body_length, blob_length = parse_header(header)
        except FatalFrameError as exc:
            self._send_error(HEADER.unpack(header)[0], exc.code, exc.message)
            return False
        body = self._reader.read_exact(body_length, self._note_progress)
        # A push's batch is only ever viewed (files.apply_write): it may stay a bytearray.
        writable = blob_length >= _WRITABLE_BLOB and body is not None and body.startswith(b'{"type":"WriteFiles"')
        blob = self._reader.read_exact(blob_length, self._note_progress, writable) if blob_length else b""
        if body is None or blob is None:
            return False
        try:
            message_type, fields = decode_body(body)
            if message_type in _REPLY_TYPES:
                raise ProtocolError("invalid", "%s is a reply, not a request" % message_type)
        except ProtocolError as exc:
            self._send_error(request_id, exc.code, exc.message)
            return True
        if message_type in ("Ping", "GetHelperInfo"):
            self._handle(request_id, message_type, fields, blob)
        else:
            self._workers = [worker for worker in self._workers if worker.is_alive()]
            worker = threading.Thread(
                target=self._handle, args=(request_id, message_type, fields, blob)
            )
            worker.start()
            self._workers.append(worker)
        return True

    def _beat(self, done):
        while not done.wait(HEARTBEAT_SECONDS):
            self._note_progress()

    def _note_progress(self):
        with contextlib.suppress(OSError):
            self.send(0, "Progress", {})

    def _send_error(self, request_id, code, message):
        self.send(request_id, "Error", {"code": code, "message": message})

    def _handle(self, request_id, message_type, fields, blob):
        beating = None
        if message_type in _HASHING:
            beating = threading.Event()
            threading.Thread(target=self._beat, args=(beating,), daemon=True).start()
        try:
            if message_type in _OPERATIONS:
                with operation_lock.shared():
                    reply_type, reply_fields, reply_blob = self._dispatch(message_type, fields, blob)
                    if message_type in _ACTIVITY:
                        idle.note(_ACTIVITY[message_type], fields["name"])
            else:
                reply_type, reply_fields, reply_blob = self._dispatch(message_type, fields, blob)
        except RequestFailed as exc:
            reply_type, reply_fields, reply_blob = "Error", {"code": exc.code, "message": exc.message}, b""
        except tmux.TmuxMissing as exc:
            reply_type, reply_fields, reply_blob = "Error", {"code": "missing_tmux", "message": str(exc)}, b""
        except tmux.TmuxError as exc:
            reply_type, reply_fields, reply_blob = "Error", {"code": "tmux", "message": str(exc)}, b""
        except OSError as exc:  # this host refused something: a full disk, a permission
            message = "%s: %s" % (type(exc).__name__, exc)
            reply_type, reply_fields, reply_blob = "Error", {"code": "host", "message": message}, b""
        except Exception as exc:
            import traceback

            with contextlib.suppress(OSError):  # the log may be on the disk that is full
                traceback.print_exc()
            message = "%s: %s" % (type(exc).__name__, exc)
            reply_type, reply_fields, reply_blob = "Error", {"code": "internal", "message": message}, b""
        finally:
            if beating is not None:
                beating.set()
        # If the controller went away, the work itself is still done and recorded.
        with contextlib.suppress(OSError):
            self.send(request_id, reply_type, reply_fields, reply_blob)

    def _watch_changes(self, fields):
        root = self._work_dir(fields["name"], "")
        if not change_feed.enabled():
            return "Changes", {"cursor": "", "paths": [], "overflow": True}, b""
        try:
            cursor, paths, overflow = change_feed.changes_since(root, fields["cursor"], fields["wait"])
        except change_feed.Unavailable:
            return "Changes", {"cursor": "", "paths": [], "overflow": True}, b""
        guard = guarded.guard_for(root)
        paths = [path for path in paths if not guard.hides(path)]
        return "Changes", {"cursor": cursor, "paths": [files.path_to_wire(path) for path in paths],
                           "overflow": overflow}, _packed_entries(root, paths)

    def _dispatch(self, message_type, fields, blob):
        handler = HANDLERS.get(message_type)
        if handler is None:
            raise ProtocolError("unknown_type", "no handler for %s" % message_type)
        return handler(self, fields, blob)

    def _on_ping(self, fields, blob):
        return "Pong", {}, blob

    def _on_get_helper_info(self, fields, blob):
        return "HelperInfo", self._helper_info(), b""

    def _on_list_agents(self, fields, blob):
        listed = agents.list_agents(fields["quiet_seconds"])
        return "AgentList", {"agents": listed, "host": idle.status()}, b""

    def _on_find_agent(self, fields, blob):
        return "AgentList", {"agents": agents.recorded(fields["name"]), "host": None}, b""

    def _on_create_agent(self, fields, blob):
        origin = fields.get("work_dir_origin")
        if origin and origin.get("carried") == "yes" and origin.get("kind") == "copy" \
                and os.path.isdir(fields.get("work_dir") or ""):
            # Noted before the agent starts: what it finds here is not its work, and a
            # removal of the work dir loses only what it changed beyond (GetWorkState). A
            # worktree's comes with the request: mngr knows what it carried there.
            tree = files.carried_tree(fields["work_dir"])
            if tree:
                fields["work_dir_origin"] = dict(origin, carried_tree=tree)
        return "AgentReply", {"agent": agents.create_agent(fields, blob)}, b""

    def _on_write_agent_config(self, fields, blob):
        agents.write_agent_config(fields["name"], fields["agent_config"], fields["path_dirs"])
        return "Done", {}, b""

    def _on_read_agent_config(self, fields, blob):
        return "AgentConfigState", agents.agent_config_state(fields["name"], fields["salt"]), b""

    def _on_stop_agent(self, fields, blob):
        return "AgentReply", {"agent": agents.stop_agent(fields["name"], self._spare, fields["grace"])}, b""

    def _on_start_agent(self, fields, blob):
        agent = agents.start_agent(fields["name"], fields["base_env"], fields["umask"])
        return "AgentReply", {"agent": agent}, b""

    def _on_destroy_agent(self, fields, blob):
        agents.destroy_agent(fields["name"], self._spare, fields["keep_work_dir"], fields["grace"])
        return "Done", {}, b""

    def _on_rename_agent(self, fields, blob):
        return "AgentReply", {"agent": record_changes.rename_agent(fields["name"], fields["new_name"])}, b""

    def _on_set_labels(self, fields, blob):
        agent = record_changes.set_labels(fields["name"], fields["add"], fields["remove"])
        return "AgentReply", {"agent": agent}, b""

    def _on_set_archived(self, fields, blob):
        agent = record_changes.set_archived(fields["name"], fields["archived"], self._spare, fields["grace"])
        return "AgentReply", {"agent": agent}, b""

    def _on_send_message(self, fields, blob):
        agents.send_message(fields)
        return "Done", {}, b""

    def _on_await_input(self, fields, blob):
        agents.await_input(fields["name"], fields["timeout"])
        return "Done", {}, b""

    def _on_capture_pane(self, fields, blob):
        return "Captured", {}, agents.capture(fields["name"], fields["full"])

    def _on_read_output(self, fields, blob):
        if fields["source"] in ("session", "claude"):
            path = output.session_log_path(fields["name"])
        elif fields["source"] == "output":
            path = agents.output_log_path(fields["name"])
        elif fields["source"] == "output-previous":  # the part moved aside by rotation
            path = agents.output_log_path(fields["name"]) + ".1"
        else:
            raise ProtocolError("invalid", "unknown output source %r" % fields["source"])
        chunk, data = output.read(path, fields["offset"], fields["tail_lines"], fields["max_bytes"])
        return "OutputChunk", chunk, data

    def _on_note_activity(self, fields, blob):
        agents.note_activity(fields["name"], fields["source"])
        if fields["source"] == "attach":
            idle.note("user", fields["name"])
        return "Done", {}, b""

    def _on_set_idle_settings(self, fields, blob):
        return "IdleSettings", self._set_idle_settings(fields), b""

    def _on_keep_alive(self, fields, blob):
        agent_records.check_name(fields["name"])
        agents.output_log_path(fields["name"])  # the agent must exist
        idle.keep_alive(fields["name"], fields["seconds"])
        return "Done", {}, b""

    def _on_read_watcher_log(self, fields, blob):
        return "Captured", {}, idle.watcher_log_tail(fields["tail_lines"])

    def _on_get_manifest(self, fields, blob):
        root = self._work_dir(fields["name"], fields["work_dir"])
        guard = guarded.guard_for(root)
        blob, tag, unchanged, gone = manifest_cache.manifest_since(root, fields["include_ignored"], guard,
                                                                   fields["known"])
        uncommitted = [files.path_to_wire(path) for path in files.uncommitted(root)] if fields["with_uncommitted"] else []
        return "Manifest", {"root": root, "uncommitted": uncommitted, "tag": tag, "unchanged": unchanged,
                            "guarded": [files.path_to_wire(path) for path in guard.paths], "home": guard.is_home,
                            "changes_only": gone is not None,
                            "gone": [files.path_to_wire(path) for path in gone or ()]}, blob

    def _on_write_files(self, fields, blob):
        started = time.monotonic()  # the wait for an earlier batch is the host's time too
        if not fields["session"]:
            return self._write_files(fields, blob, fields["known"], started)
        with self._write_order.turn(fields["session"], fields["sequence"], fields["known"],
                                    fields["last"]) as outcome:
            reply = self._write_files(fields, blob, outcome.tag, started)
            outcome.tag = reply[1]["tag"]
        return reply

    def _on_watch_changes(self, fields, blob):
        return self._watch_changes(fields)

    def _on_read_events(self, fields, blob):
        from . import events

        found, cursor, more = events.wait_for_events(fields["cursor"], fields["since"], min(fields["wait"], 30.0),
                                                     fields["quiet_seconds"], max(1, fields["max_lines"]))
        return "Events", {"events": found, "cursor": cursor, "more": more}, b""

    def _on_stat_paths(self, fields, blob):
        root = self._work_dir(fields["name"], "")
        paths = [files.path_from_wire(path) for path in fields["paths"]]
        return "Changes", {"paths": fields["paths"]}, _packed_entries(root, paths)

    def _on_get_signatures(self, fields, blob):
        root = self._work_dir(fields["name"], fields["work_dir"])
        path = files.check_path(files.path_from_wire(fields["path"]))
        if guarded.guard_for(root).hides(path):
            return "Signatures", {}, b""
        block, size, version, records = files.signatures_of(root, path)
        return "Signatures", {"block": block, "size": size, "version": version}, records

    def _on_write_delta(self, fields, blob):
        return "Written", self._write_delta(fields, blob), b""

    def _on_read_delta(self, fields, blob):
        root = self._work_dir(fields["name"], "")
        reply, ops = files.read_delta(root, fields["path"], blob, fields["block"], fields["old_size"],
                                      fields["literal_budget"], guarded.guard_for(root), fields["offset"],
                                      fields["length"], fields["signatures_tag"])
        return "DeltaData", reply, ops

    def _on_prepare_work_dir(self, fields, blob):
        agent_records.check_name(fields["name"])
        if fields["remove"]:
            files.remove_work_dir(fields["path"])
            return "WorkDir", {"path": fields["path"]}, b""
        path = files.prepare_work_dir(state.host_dir(), fields["name"], fields["path"], blob, fields["branch"],
                                      fields["new_branch"], fields["clone_url"])
        return "WorkDir", {"path": path}, b""

    def _on_get_agent_spec(self, fields, blob):
        found = agents.spec(fields["name"])
        found["branch"] = files.current_branch(found["work_dir"]) if os.path.isdir(found["work_dir"]) else ""
        return "AgentSpec", found, b""

    def _on_get_work_state(self, fields, blob):
        root = self._work_dir(fields["name"], "")
        uncommitted, heads = files.work_state(root)
        _, record = agent_records.require(fields["name"])
        origin = record.get("work_dir_origin") or {}
        carried = origin.get("carried_tree")
        if carried and uncommitted:
            uncommitted = files.changed_since(root, carried, uncommitted)
        if not heads and origin.get("kind") == "copy" and not origin.get("repo"):
            # A copy of a directory outside git: what changed since the agent was made is its work.
            uncommitted = files.changed_after(root, state.epoch_of(record.get("created_at", "")))
        return "WorkState", {"uncommitted": [files.path_to_wire(path) for path in uncommitted], "heads": heads,
                             "unpushed": files.unpushed(root) if heads else -1}, b""

    def _on_get_git_bundle(self, fields, blob):
        return "Captured", {}, files.git_bundle(self._work_dir(fields["name"], ""))

    def _on_read_files(self, fields, blob):
        started = time.monotonic()
        root = self._work_dir(fields["name"], "")
        entries, data, skipped, versions = files.read_many(root, fields["paths"], guarded.guard_for(root),
                                                           fields["offset"], fields["length"],
                                                           fields["compress"])
        return "FileData", {"files": entries, "skipped": skipped, "versions": versions,
                            "seconds": time.monotonic() - started}, data

    def _on_exec_start(self, fields, blob):
        work_dir, env = agents.exec_context(fields["name"])
        exec_id = self._commands.start(["/bin/sh", "-c", fields["command"]], work_dir, env)
        idle.note("user", fields["name"])
        return "ExecStarted", {"exec_id": exec_id}, b""

    def _on_exec_read(self, fields, blob):
        stdout, stderr, exit_code = self._commands.read(fields["exec_id"], min(fields["wait"], 30.0))
        # A command the user runs on the host keeps it up for as long as they wait for it.
        idle.note("user", "")
        return "ExecOutput", {"stdout_length": len(stdout), "exit_code": exit_code}, stdout + stderr

    def _on_collect_garbage(self, fields, blob):
        from . import gc

        return "Garbage", {"found": gc.collect(fields["dry_run"], fields["min_age"])}, b""

    def _on_probe_ports(self, fields, blob):
        from . import ports

        return "PortsOpen", {"listening": ports.listening(fields["ports"])}, b""

    def _on_ensure_cli(self, fields, blob):
        return "CliPlace", cli_bundles.ensure(fields), b""

    def _on_put_cli_part(self, fields, blob):
        started = time.monotonic()
        cli_bundles.put_part(fields, blob)
        return "CliPartStored", {"seconds": time.monotonic() - started}, b""

    def _on_finish_cli(self, fields, blob):
        cli_bundles.finish(fields)
        return "Done", {}, b""

    def _on_exec_kill(self, fields, blob):
        self._commands.kill(fields["exec_id"])
        return "Done", {}, b""

    def _write_files(self, fields, blob, known, started):
        root = self._work_dir(fields["name"], fields["work_dir"])
        guard = guarded.guard_for(root)
        with manifest_cache.writing(root, known) as write:
            skipped = files.apply_write(root, fields["dirs"], fields["links"], fields["parts"],
                                        fields["deletes"], blob, guard, fields["finish_dirs"], fields["expect"])
            missed = set(entry[0] for entry in skipped)
            write.written.extend(path for path in files.written_paths(
                fields["dirs"], fields["links"], fields["parts"], fields["finish_dirs"]) if path not in missed)
            write.deleted.extend(path for path in (files.path_from_wire(path) for path in fields["deletes"])
                                 if path not in missed)
        if skipped:
            write.tag = ""  # the controller's copy of the manifest would be wrong: no tag
        idle.note("user", fields["name"])
        return "Written", {"tag": write.tag, "skipped": files.skipped_to_wire(skipped),
                           "seconds": time.monotonic() - started}, b""

    def _write_delta(self, fields, blob):
        import zlib

        root = self._work_dir(fields["name"], fields["work_dir"])
        guard = guarded.guard_for(root)
        path = files.check_path(files.path_from_wire(fields["path"]))
        if fields["compressed"]:
            inflater = zlib.decompressobj()
            try:
                blob = inflater.decompress(blob, files.MAX_PART_BYTES)
            except zlib.error as exc:
                raise RequestFailed("invalid", "a delta is not valid zlib data: %s" % exc) from None
        with manifest_cache.writing(root, fields["known"]) as write:
            skipped = files.apply_delta(root, path, blob, fields, guard)
            if fields["final"] and not skipped:
                write.written.append(path)
        if skipped:
            write.tag = ""
        idle.note("user", fields["name"])
        return {"tag": write.tag, "skipped": files.skipped_to_wire(skipped)}

    def _work_dir(self, name, work_dir):
        """The agent's work dir; with no name, ``work_dir`` (one PrepareWorkDir made)."""
        if not name:
            if not os.path.isabs(work_dir) or not os.path.isdir(work_dir):
                raise RequestFailed("invalid", "no agent named and no work dir to write to: %r" % work_dir)
            return work_dir
        work_dir, _ = agents.exec_context(name)
        if not os.path.isdir(work_dir):
            raise RequestFailed("invalid", "the work dir %s of agent %r does not exist" % (work_dir, name))
        return work_dir

    def _set_idle_settings(self, fields):
        only_if_unset = fields.pop("only_if_unset")
        dry_run = fields.pop("dry_run")
        changes = {key: value for key, value in fields.items() if value is not None}
        unavailable = self._watcher_unavailable()
        if only_if_unset and unavailable:
            changes = {}  # a provider's default, not the user's wish: no daemon, no default
        settings = idle.update_settings(
            changes, only_if_unset=only_if_unset, check=self._check_watcher_can_run, dry_run=dry_run
        )
        return {key: settings[key] for key in ("timeout", "mode", "sources", "command", "stop_grace", "cpu_threshold")}

    def _check_watcher_can_run(self, settings):
        """Idle shutdown needs the host daemon (its watcher): refuse it where none can run."""
        unavailable = self._watcher_unavailable()
        if unavailable and idle.enabled(settings):
            raise RequestFailed("invalid", "idle shutdown needs the host daemon, " + unavailable)

    def _watcher_unavailable(self):
        """Why no host daemon (and so no watcher) can run here, or "" if one can."""
        if os.environ.get("MNGR_HOST_DAEMON") == "0":
            return "and MNGR_HOST_DAEMON=0 turns it off"
        if len(daemon_launch.socket_path(self._helper_hash)) > daemon_address.MAX_SOCKET_PATH:
            return "which cannot run with a host dir path this long"
        return ""

    def _helper_info(self):
        import platform
        import socket

        return {
            "version": self._helper_hash,
            "pid": os.getpid(),
            "python": platform.python_version(),
            "hostname": socket.gethostname(),
            "host_dir": state.host_dir(),
            "daemon_socket": self._daemon_socket(),
        }

    def _daemon_socket(self):
        """Where this version's host daemon listens ("" when there is no warm path here)."""
        path = daemon_launch.socket_path(self._helper_hash)
        if len(path) > daemon_address.MAX_SOCKET_PATH or os.environ.get("MNGR_HOST_DAEMON") == "0":
            return ""
        return path


# Every request type the helper answers, and the method that answers it.
HANDLERS = {
    "Ping": Server._on_ping,
    "GetHelperInfo": Server._on_get_helper_info,
    "ListAgents": Server._on_list_agents,
    "FindAgent": Server._on_find_agent,
    "CreateAgent": Server._on_create_agent,
    "WriteAgentConfig": Server._on_write_agent_config,
    "ReadAgentConfig": Server._on_read_agent_config,
    "StopAgent": Server._on_stop_agent,
    "StartAgent": Server._on_start_agent,
    "DestroyAgent": Server._on_destroy_agent,
    "RenameAgent": Server._on_rename_agent,
    "SetLabels": Server._on_set_labels,
    "SetArchived": Server._on_set_archived,
    "SendMessage": Server._on_send_message,
    "AwaitInput": Server._on_await_input,
    "CapturePane": Server._on_capture_pane,
    "ReadOutput": Server._on_read_output,
    "NoteActivity": Server._on_note_activity,
    "SetIdleSettings": Server._on_set_idle_settings,
    "KeepAlive": Server._on_keep_alive,
    "ReadWatcherLog": Server._on_read_watcher_log,
    "GetManifest": Server._on_get_manifest,
    "WriteFiles": Server._on_write_files,
    "WatchChanges": Server._on_watch_changes,
    "StatPaths": Server._on_stat_paths,
    "ReadEvents": Server._on_read_events,
    "GetSignatures": Server._on_get_signatures,
    "WriteDelta": Server._on_write_delta,
    "ReadDelta": Server._on_read_delta,
    "PrepareWorkDir": Server._on_prepare_work_dir,
    "GetAgentSpec": Server._on_get_agent_spec,
    "GetWorkState": Server._on_get_work_state,
    "GetGitBundle": Server._on_get_git_bundle,
    "ReadFiles": Server._on_read_files,
    "ExecStart": Server._on_exec_start,
    "ExecRead": Server._on_exec_read,
    "CollectGarbage": Server._on_collect_garbage,
    "ExecKill": Server._on_exec_kill,
    "EnsureCli": Server._on_ensure_cli,
    "PutCliPart": Server._on_put_cli_part,
    "FinishCli": Server._on_finish_cli,
    "ProbePorts": Server._on_probe_ports,
}


def _take_over_stdio():
    """Keep the channel on private descriptors; point fds 0-2 where children can do no harm.

    Anything that writes to fd 1 (a stray print, a child process) would corrupt the frame
    stream, so fd 1 becomes the log and the channel lives on descriptors no child inherits.
    """
    in_fd = os.dup(0)
    out_fd = os.dup(1)
    redirect_stderr_to_log("helper.log")
    return in_fd, out_fd


def redirect_stderr_to_log(name):
    """Point fd 0 at /dev/null and fds 1 and 2 at the host's log file ``name``."""
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    log_fd = _open_log(name)
    if log_fd is not None:
        os.dup2(log_fd, 2)
        os.close(log_fd)
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def _open_log(name):
    try:
        log_dir = state.ensure_dir(os.path.join(state.host_dir(), "host"))
        path = os.path.join(log_dir, name)
        try:
            if os.path.getsize(path) > _LOG_MAX_BYTES:
                os.replace(path, path + ".1")
        except OSError:
            pass
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return None


def _start_daemon(helper_hash):
    try:
        helper_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        daemon_launch.ensure_running(helper_hash, helper_dir)
    except Exception:
        import traceback

        traceback.print_exc()


def main(helper_hash="dev"):
    state.make_private()
    in_fd, out_fd = _take_over_stdio()
    # A helper started by a command an agent ran is not the agent: neither is what it spawns.
    processes.forget_agent_identity()
    os.environ["MNGR_HELPER_PID"] = str(os.getpid())
    # Off the critical path: the first reply does not wait for the daemon to be spawned,
    # but the process does not exit before the spawn is done.
    starter = threading.Thread(target=_start_daemon, args=(helper_hash,))
    starter.start()
    Server(in_fd, out_fd, helper_hash).serve()
    starter.join()
