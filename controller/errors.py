"""Every error mngr raises on purpose derives from MngrError; the CLI prints it as one line.

    MngrError
    ├── UsageError            bad input on the command line (exit status 2)
    ├── ConfigError           unreadable or invalid configuration
    ├── UnknownProvider       --in names no registered provider
    ├── UnknownAgentType      --agent-type names no known agent type
    ├── AgentNotFound         no agent with that name on any host searched
    ├── Interrupted           Ctrl-C once an agent was made (exit status 130)
    └── HostError             something went wrong on or on the way to one host
        ├── ChannelError      the byte stream to the helper failed
        │   ├── BootstrapError    the first stage never handed over to the helper
        │   ├── ChannelClosed     the helper went away during a request
        │   └── ChannelTimeout    no reply within the time allowed
        ├── ProtocolViolation the helper sent something that is not a valid frame or reply
        └── RemoteError       the helper answered a request with an Error reply
            ├── AgentExists
            ├── RemoteAgentNotFound
            ├── AgentStopped
            ├── MissingBinary     the agent's program is not on the host's PATH
            ├── MissingTmux
            └── InvalidRequest

Low-level exceptions (OSError, msgspec errors) are translated where they are caught, with
``raise ... from exc`` and the host they concern.
"""

from __future__ import annotations


class MngrError(Exception):
    exit_code = 1


class UsageError(MngrError):
    exit_code = 2


class ConfigError(MngrError):
    pass


class UnknownProvider(MngrError):
    exit_code = 2


class UnknownAgentType(MngrError):
    exit_code = 2


class AgentNotFound(MngrError):
    pass


class Interrupted(MngrError):
    """Ctrl-C after something was made: the message says what exists now."""

    exit_code = 130


class HostError(MngrError):
    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"host {host!r}: {message}")
        self.host = host
        self.detail = message


class ChannelError(HostError):
    pass


class BootstrapError(ChannelError):
    pass


class ChannelClosed(ChannelError):
    pass


class ChannelTimeout(ChannelError):
    pass


class HelperUnresponsive(ChannelTimeout):
    """The far end took the connection but did not answer a Ping in time (a hung daemon)."""


class ProtocolViolation(HostError):
    pass


class RemoteError(HostError):
    code = "error"

    def __init__(self, host: str, code: str, message: str) -> None:
        super().__init__(host, message)
        self.code = code


class AgentExists(RemoteError):
    pass


class RemoteAgentNotFound(RemoteError):
    pass


class AgentStopped(RemoteError):
    pass


class MissingBinary(RemoteError):
    pass


class MissingTmux(RemoteError):
    pass


class InvalidRequest(RemoteError):
    pass


_REMOTE_ERRORS: dict[str, type[RemoteError]] = {
    "exists": AgentExists,
    "not_found": RemoteAgentNotFound,
    "stopped": AgentStopped,
    "missing_binary": MissingBinary,
    "missing_tmux": MissingTmux,
    "invalid": InvalidRequest,
}


def remote_error(host: str, code: str, message: str) -> RemoteError:
    return _REMOTE_ERRORS.get(code, RemoteError)(host, code, message)
