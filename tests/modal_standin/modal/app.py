"""``modal.App``: only what a sandbox needs, an App found (or made) by name."""

from __future__ import annotations

import re
import time
from typing import Any

from . import _core
from .exception import InvalidError, NotFoundError


class App:
    """A deployed App, as ``App.lookup`` returns it: a name and an id."""

    def __init__(self, name: str | None, app_id: str | None) -> None:
        self._name = name
        self._app_id = app_id

    def __repr__(self) -> str:
        return f"App({self._name!r})"

    @property
    def app_id(self) -> str | None:
        return self._app_id

    @property
    def name(self) -> str | None:
        return self._name

    @staticmethod
    def lookup(
        name: str,
        *,
        client: Any | None = None,
        environment_name: str | None = None,
        create_if_missing: bool = False,
    ) -> App:
        """The App ``name`` (or the App of an ``ap-`` id); made when missing if asked.

        The SDK answers from AppGetOrCreate, so this is where a missing token shows first.
        """
        by_id = re.match(r"^ap-[a-zA-Z0-9]{22}$", name) is not None
        if by_id and create_if_missing:
            raise InvalidError("`create_if_missing=True` is not supported when looking up an App by ID.")
        if not by_id:
            _core.check_object_name(name, "App")
        _core.check_credentials()
        env = _core.environment(environment_name)
        with _core.state() as state:
            if by_id:
                for record in state["apps"].values():
                    if record["app_id"] == name:
                        return App(record["name"], name)
                raise NotFoundError(f"App {name!r} not found")
            record = state["apps"].get(f"{env}/{name}")
            if record is None:
                if not create_if_missing:
                    raise NotFoundError(f"App {name!r} not found in environment {env!r}")
                record = {"name": name, "app_id": _core.new_id("ap"), "environment": env, "created_at": time.time()}
                state["apps"][f"{env}/{name}"] = record
            return App(name, record["app_id"])
