"""A sandbox's task command router (``modal.task_command_router.TaskCommandRouter``): execs
and file-system snapshots. The SDK reaches it at the URL ``SandboxGetCommandRouterAccess``
gives (this server's own port), with the token given there.

An exec is ``docker exec -i`` in the sandbox's container (with ``-t`` and a pseudo-terminal
of the server's when a pty is asked for): its output is kept whole, so a reader that
reconnects resumes at its offset, and stdin writes carry their offset, so a retried write is
taken once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import struct
import termios
import threading
from typing import Any

from google.protobuf import empty_pb2  # noqa: F401 (the router's unary answers)
from grpclib import GRPCError, Status
from modal_proto import task_command_router_pb2 as sr_pb2
from modal_proto.task_command_router_grpc import TaskCommandRouterBase

from .sandboxes import snapshot
from .server import served
from .state import Exec, Sandbox, spawn

CHUNK = 64 * 1024
STDOUT = sr_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDOUT


class CommandRouter(served(TaskCommandRouterBase)):  # type: ignore[misc]
    def _sandbox(self, task_id: str) -> Sandbox:
        sandbox = self.world.sandbox_by_task(task_id)
        if sandbox is None:
            raise GRPCError(Status.NOT_FOUND, f"Task {task_id} not found")
        return sandbox

    def _exec(self, task_id: str, exec_id: str) -> Exec:
        found = self._sandbox(task_id).execs.get(exec_id)
        if found is None:
            raise GRPCError(Status.NOT_FOUND, f"Exec {exec_id} not found")
        return found

    async def TaskExecStart(self, stream: Any) -> None:
        """``sandbox.exec(*args, env=, workdir=, pty=, timeout=)``; the exec id is the client's
        (a retried start finds it started)."""
        request = await stream.recv_message()
        sandbox = self._sandbox(request.task_id)
        if not sandbox.running:
            raise GRPCError(Status.NOT_FOUND, f"Task {request.task_id} has finished")
        if request.exec_id not in sandbox.execs:
            env: dict[str, str] = {}
            for source in request.secret_sources:
                if source.secret_id:
                    env.update(self.world.secrets.get(source.secret_id, ("", {}))[1])
                else:
                    env.update(source.env.contents)
            env.update(dict(request.env))
            running = Exec(request.exec_id)
            sandbox.execs[request.exec_id] = running
            await _start(sandbox, running, list(request.command_args), env, request)
        await stream.send_message(sr_pb2.TaskExecStartResponse())

    async def TaskExecStdinWrite(self, stream: Any) -> None:
        request = await stream.recv_message()
        running = self._exec(request.task_id, request.exec_id)
        if request.offset > running.stdin_offset:
            raise GRPCError(Status.FAILED_PRECONDITION,
                            f"stdin write at offset {request.offset}, {running.stdin_offset} bytes taken so far")
        data = request.data[running.stdin_offset - request.offset:]
        running.stdin_offset += len(data)
        if not running.stdin_closed:
            await _write_stdin(running, data, request.eof)
        await stream.send_message(sr_pb2.TaskExecStdinWriteResponse())

    async def TaskExecStdioRead(self, stream: Any) -> None:
        """Output from ``offset`` as it comes, until the stream's end."""
        request = await stream.recv_message()
        running = self._exec(request.task_id, request.exec_id)
        is_stdout = request.file_descriptor == STDOUT
        offset = request.offset

        def more(offset: int) -> bool:
            return (len(running.stdout if is_stdout else running.stderr) > offset
                    or (running.stdout_done if is_stdout else running.stderr_done))

        while True:
            async with running.changed:
                await running.changed.wait_for(functools.partial(more, offset))
                data = bytes((running.stdout if is_stdout else running.stderr)[offset:offset + CHUNK])
            if not data:
                return
            await stream.send_message(sr_pb2.TaskExecStdioReadResponse(data=data))
            offset += len(data)

    async def TaskExecPoll(self, stream: Any) -> None:
        request = await stream.recv_message()
        running = self._exec(request.task_id, request.exec_id)
        if running.exit_code is None:
            await stream.send_message(sr_pb2.TaskExecPollResponse())
        else:
            await stream.send_message(sr_pb2.TaskExecPollResponse(code=running.exit_code))

    async def TaskExecWait(self, stream: Any) -> None:
        request = await stream.recv_message()
        running = self._exec(request.task_id, request.exec_id)
        async with running.changed:
            await running.changed.wait_for(lambda: running.exit_code is not None)
        assert running.exit_code is not None
        await stream.send_message(sr_pb2.TaskExecWaitResponse(code=running.exit_code))

    async def TaskSnapshotFilesystem(self, stream: Any) -> None:
        """``sandbox.snapshot_filesystem()``: a ``docker commit`` of the container."""
        request = await stream.recv_message()
        sandbox = self._sandbox(request.task_id)
        if not sandbox.running:
            raise GRPCError(Status.FAILED_PRECONDITION, "Sandbox has finished")
        image = await snapshot(self.server, sandbox)
        await stream.send_message(sr_pb2.TaskSnapshotFilesystemResponse(image_id=image.id))


async def _start(sandbox: Sandbox, running: Exec, args: list[str], env: dict[str, str], request: Any) -> None:
    pty = request.pty_info.enabled
    argv = ["docker", "exec", "-i", *(["-t"] if pty else [])]
    if request.workdir:
        argv += ["-w", request.workdir]
    if pty:
        env.setdefault("TERM", request.pty_info.env_term or "xterm-256color")
        for key, value in (("COLORTERM", request.pty_info.env_colorterm),
                           ("TERM_PROGRAM", request.pty_info.env_term_program)):
            if value:
                env.setdefault(key, value)
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    argv += [sandbox.container, *args]
    discard_out = request.stdout_config == sr_pb2.TaskExecStdoutConfig.TASK_EXEC_STDOUT_CONFIG_DEVNULL
    discard_err = request.stderr_config == sr_pb2.TaskExecStderrConfig.TASK_EXEC_STDERR_CONFIG_DEVNULL
    loop = asyncio.get_running_loop()
    if pty:
        master, slave = os.openpty()
        if request.pty_info.winsz_rows and request.pty_info.winsz_cols:
            fcntl.ioctl(slave, termios.TIOCSWINSZ,
                        struct.pack("HHHH", request.pty_info.winsz_rows, request.pty_info.winsz_cols, 0, 0))
        try:
            running.process = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        finally:
            os.close(slave)
        running.pty_master = master
        running.stderr_done = True
        _pump_thread(loop, running, master, discard_out)
    else:
        running.process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        assert running.process.stdout is not None and running.process.stderr is not None
        spawn(_pump(running, running.process.stdout, True, discard_out))
        spawn(_pump(running, running.process.stderr, False, discard_err))
    spawn(_reap(running, request.timeout_secs))


async def _pump(running: Exec, reader: asyncio.StreamReader, is_stdout: bool, discard: bool) -> None:
    while True:
        data = await reader.read(CHUNK)
        async with running.changed:
            if data and not discard:
                (running.stdout if is_stdout else running.stderr).extend(data)
            if not data:
                if is_stdout:
                    running.stdout_done = True
                else:
                    running.stderr_done = True
            running.changed.notify_all()
        if not data:
            return


def _pump_thread(loop: asyncio.AbstractEventLoop, running: Exec, master: int, discard: bool) -> None:
    """A pty's output, read in a thread (its master fd reports EIO once the terminal is gone)."""

    async def add(data: bytes) -> None:
        async with running.changed:
            if data and not discard:
                running.stdout.extend(data)
            if not data:
                running.stdout_done = True
            running.changed.notify_all()

    def read() -> None:
        while True:
            try:
                data = os.read(master, CHUNK)
            except OSError:
                data = b""
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(add(data), loop).result()
            if not data:
                return

    threading.Thread(target=read, name=f"modal-test-pty-{running.id}", daemon=True).start()


async def _reap(running: Exec, timeout: int) -> None:
    assert running.process is not None
    try:
        code = await asyncio.wait_for(running.process.wait(), timeout or None)
    except TimeoutError:
        running.process.kill()
        code = await running.process.wait()
    if running.pty_master is not None:
        # The exec's end ends its terminal: close our side once the output is read.
        async with running.changed:
            await running.changed.wait_for(lambda: running.stdout_done)
        with contextlib.suppress(OSError):
            os.close(running.pty_master)
    async with running.changed:
        running.exit_code = code
        running.changed.notify_all()


async def _write_stdin(running: Exec, data: bytes, eof: bool) -> None:
    if eof:
        running.stdin_closed = True
    if running.pty_master is not None:
        if data:
            await asyncio.to_thread(_write_all, running.pty_master, data)
        if eof:
            await asyncio.to_thread(_write_all, running.pty_master, b"\x04")
        return
    assert running.process is not None and running.process.stdin is not None
    with contextlib.suppress(ConnectionError, RuntimeError):  # the exec is gone: its input goes nowhere
        if data:
            running.process.stdin.write(data)
            await running.process.stdin.drain()
        if eof:
            running.process.stdin.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view):]
