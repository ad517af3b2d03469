"""The exception classes of ``modal.exception`` that a provider meets, with the SDK's hierarchy.

The real classes that stand for gRPC statuses also derive from ``grpclib.GRPCError`` (a
transition the SDK is phasing out); these do not, so code that catches ``grpclib`` errors
works against the SDK only by accident and fails here, as it should.
"""

from __future__ import annotations


class Error(Exception):
    """Base class for all Modal errors."""


class AlreadyExistsError(Error):
    """A resource creation conflicts with an existing resource (ALREADY_EXISTS)."""


class AuthError(Error):
    """Missing or invalid authentication (UNAUTHENTICATED, or no token configured)."""


class InternalError(Error):
    """An internal error in the Modal system (INTERNAL)."""


class InvalidError(Error):
    """The user did something invalid (INVALID_ARGUMENT, OUT_OF_RANGE)."""


class ConflictError(InvalidError):
    """The request conflicts with the current state (FAILED_PRECONDITION, ABORTED)."""


class NotFoundError(Error):
    """A requested resource was not found (NOT_FOUND)."""


class PermissionDeniedError(Error):
    """The caller may not do this (PERMISSION_DENIED)."""


class ResourceExhaustedError(Error):
    """A quota or capacity is exhausted (RESOURCE_EXHAUSTED)."""


class ServiceError(Error):
    """Basic client/server communication failed (UNAVAILABLE, DEADLINE_EXCEEDED, ...)."""


class RemoteError(Error):
    """An error on the Modal server."""


class TimeoutError(Error):
    """Base class for Modal timeouts."""


class SandboxTimeoutError(TimeoutError):
    """A Sandbox exceeded its execution duration limit and timed out."""


class ExecTimeoutError(TimeoutError):
    """A container process exceeded its execution duration limit."""


class SandboxTerminatedError(Error):
    """A Sandbox was terminated for an internal reason (or by ``terminate()``)."""


class ConnectionError(Error):
    """Connecting to the Modal servers failed."""


class ExecutionError(Error):
    """Something unexpected happened during runtime."""


class ClientClosed(Error):
    """The client (or a detached Sandbox handle) was used after it was closed."""


class ImageBuildError(RemoteError):
    """An Image build failed; ``image_id`` names the failed Image."""

    def __init__(self, message: str, image_id: str) -> None:
        super().__init__(message)
        self.image_id = image_id


class DeprecationError(UserWarning):
    """The warning category of a deprecated Modal feature."""
