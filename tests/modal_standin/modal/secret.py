"""``modal.Secret``: environment variables for a sandbox, given inline or stored by name."""

from __future__ import annotations

from typing import Any

from . import _core
from .exception import InvalidError, NotFoundError


class Secret:
    """Resolved when a sandbox (or exec) uses it, as the SDK hydrates a Secret lazily."""

    def __init__(self, env: dict[str, str] | None, name: str | None = None, environment_name: str | None = None,
                 required_keys: list[str] | None = None) -> None:
        self._env = env
        self._name = name
        self._environment_name = environment_name
        self._required_keys = list(required_keys or [])

    def __repr__(self) -> str:
        return f"Secret.from_name({self._name!r})" if self._name is not None else "Secret.from_dict(...)"

    @staticmethod
    def from_dict(env_dict: dict[str, str | None] = {}) -> Secret:  # noqa: B006 - the SDK's signature
        """An ephemeral Secret; keys whose value is None are left out."""
        if not isinstance(env_dict, dict):
            raise InvalidError("from_dict expects a dict of strings")
        return Secret({key: value for key, value in env_dict.items() if value is not None})

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        required_keys: list[str] = [],  # noqa: B006 - the SDK's signature
        client: Any | None = None,
    ) -> Secret:
        """A Secret stored in Modal (here: by ``modal._standin.create_secret``)."""
        _core.check_object_name(name, "Secret")
        return Secret(None, name, environment_name, required_keys)

    def _resolve(self, state: dict[str, dict[str, Any]]) -> dict[str, str]:
        if self._env is not None:
            return dict(self._env)
        env = _core.environment(self._environment_name)
        record = state["secrets"].get(f"{env}/{self._name}")
        if record is None:
            raise NotFoundError(f"Secret {self._name!r} not found in environment {env!r}")
        missing = [key for key in self._required_keys if key not in record["env"]]
        if missing:
            raise NotFoundError(f"Secret {self._name!r} is missing required keys: {', '.join(missing)}")
        return dict(record["env"])
