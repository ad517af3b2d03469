"""What the stand-in's objects share: the state file, the Docker engine, credentials and faults.

Modal keeps its objects on its servers; mngr reaches them from many short processes. Here the
"server" is a JSON file in ``$MNGR_MODAL_STANDIN_DIR`` (changed under an exclusive lock) plus
the Docker objects it names, each labelled with a key derived from that directory, so that
test runs sharing one engine never see each other's sandboxes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .exception import AuthError, ConnectionError, InvalidError

DIR_VARIABLE = "MNGR_MODAL_STANDIN_DIR"
BASE_IMAGE_VARIABLE = "MNGR_MODAL_STANDIN_BASE_IMAGE"
FAULTS_VARIABLE = "MNGR_MODAL_STANDIN_FAULTS"
LABEL = "mngr.modal-standin"  # value: key(); on every container, image and volume made here
SANDBOX_LABEL = "mngr.modal-standin.sandbox"
DEFAULT_ENVIRONMENT = "main"
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def standin_dir() -> Path:
    value = os.environ.get(DIR_VARIABLE)
    if not value:
        raise RuntimeError(f"the modal stand-in needs {DIR_VARIABLE}: the directory of its shared state")
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def key() -> str:
    """The label value of this state directory's Docker objects."""
    return hashlib.sha256(str(standin_dir().resolve()).encode()).hexdigest()[:12]


def new_id(prefix: str) -> str:
    """An object id shaped like the SDK's: a type prefix and 22 letters and digits."""
    return f"{prefix}-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def environment(environment_name: str | None) -> str:
    return environment_name or os.environ.get("MODAL_ENVIRONMENT") or DEFAULT_ENVIRONMENT


# -- the state file ------------------------------------------------------------------------

EMPTY_STATE: dict[str, dict[str, Any]] = {"apps": {}, "sandboxes": {}, "images": {}, "secrets": {}, "volumes": {}}


@contextlib.contextmanager
def state() -> Iterator[dict[str, dict[str, Any]]]:
    """The shared state, locked for the block and written back (atomically) after it."""
    directory = standin_dir()
    with open(directory / "state.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = directory / "state.json"
        try:
            data: dict[str, dict[str, Any]] = json.loads(path.read_text())
        except FileNotFoundError:
            data = json.loads(json.dumps(EMPTY_STATE))
        before = json.dumps(data, sort_keys=True)
        yield data
        if json.dumps(data, sort_keys=True) != before:
            temporary = directory / f"state.json.{os.getpid()}.{time.monotonic_ns()}"
            temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(temporary, path)


# -- credentials, as modal.config and modal.client find them -------------------------------

def _config_path() -> str:
    return os.environ.get("MODAL_CONFIG_PATH") or os.path.expanduser("~/.modal.toml")


def _read_user_config() -> dict[str, Any]:
    """The profiles of ``.modal.toml``; like the SDK, read once at import, and a file that
    cannot be read makes ``import modal`` itself fail with InvalidError."""
    path = _config_path()
    if os.environ.get("MODAL_IS_REMOTE") == "1" or not os.path.exists(path):
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except Exception as exc:  # the SDK reports any failure to read it this way
        problem = str(exc)
    else:
        if all(isinstance(value, dict) for value in data.values()):
            return data
        problem = "TOML file must contain table sections for each profile."
    raise InvalidError(f"\nError when reading the modal configuration from `{path}`.\n\n{problem}")


_user_config = _read_user_config()


def _active_profile() -> str:
    for name, values in _user_config.items():
        if values.get("active", False) is True:
            return name
    return "default"


_profile = os.environ.get("MODAL_PROFILE") or _active_profile()


def _setting(name: str) -> Any:
    variable = "MODAL_" + name.upper()
    if variable in os.environ:
        return os.environ[variable]
    return _user_config.get(_profile, {}).get(name)


def check_credentials() -> None:
    """What ``modal.Client.from_env()`` checks before the first call to Modal, with its
    messages; then the ``offline`` fault, where the real SDK would fail to connect."""
    active = sum(bool(values.get("active", False)) for values in _user_config.values())
    if active > 1:
        raise InvalidError("More than one Modal profile is active. Please fix with `modal profile activate` "
                           f"or by editing your Modal config file ({_config_path()}).")
    if len(_user_config) > 1 and active == 0 and _profile == "default":
        raise InvalidError("No Modal profile is active.\n\nPlease fix by running `modal profile activate` "
                           f"or by editing your Modal config file ({_config_path()}).")
    token_id, token_secret = _setting("token_id"), _setting("token_secret")
    oauth = [_setting(name) for name in ("oauth_refresh_token", "oauth_client_id", "oauth_client_secret",
                                         "oauth_jwt_key")]
    if (token_id or token_secret) and any(oauth):
        raise InvalidError("Modal token credentials and OAuth credentials cannot both be configured.")
    if any(oauth):
        refresh, client_id, client_secret, jwt_key = oauth
        if not refresh or not client_id or bool(client_secret) == bool(jwt_key):
            raise InvalidError("OAuth refresh token, client ID, and exactly one of client secret or JWT key "
                               "must be configured.")
    elif not (token_id and token_secret):
        if os.environ.get("MODAL_PROFILE") and _profile not in _user_config:
            raise AuthError(f"Modal profile '{_profile}' was not found in {_config_path()}. Run `modal profile "
                            f"list` to see available profiles, or `modal token new --profile {_profile}` to "
                            "configure it.")
        raise AuthError("Token missing. Could not authenticate client. If you have token credentials, see "
                        "modal.com/docs/sdk/py/latest/config for setup help. If you are a new user, register an "
                        "account at modal.com, then run `modal token new`.")
    if "offline" in faults():
        raise ConnectionError("Could not connect to the Modal server.")


def faults() -> set[str]:
    """The faults of ``$MNGR_MODAL_STANDIN_FAULTS``, and those a fault turned on for every
    process since (the ``faults`` file of the state directory)."""
    named = os.environ.get(FAULTS_VARIABLE, "")
    with contextlib.suppress(OSError, RuntimeError):
        named += "," + (standin_dir() / "faults").read_text().replace("\n", ",")
    return {fault.strip() for fault in named.split(",") if fault.strip()}


def add_fault(fault: str) -> None:
    """Turn ``fault`` on for every process of this state directory (tests remove the file)."""
    with open(standin_dir() / "faults", "a", encoding="utf-8") as handle:
        handle.write(fault + "\n")


# -- names, as modal._utils.name_utils checks them ----------------------------------------

def check_object_name(name: str, object_type: str) -> None:
    if (len(name) > 64 or not re.match(r"^[a-zA-Z0-9-_.]+$", name)
            or re.match(r"^ap-[a-zA-Z0-9]{22}$", name)):
        raise InvalidError(
            f"Invalid {object_type} name: '{name}'."
            "\n\nNames may contain only alphanumeric characters, dashes, periods, and underscores,"
            " must be shorter than 64 characters, and cannot conflict with App ID strings."
        )


# -- Docker ----------------------------------------------------------------------------------

_client: Any = None


def docker_client() -> Any:
    """The docker SDK's client (loaded on first use, like everything Docker here)."""
    global _client
    if _client is None:
        import docker

        _client = docker.from_env(timeout=120)
    return _client


def base_image() -> str:
    image = os.environ.get(BASE_IMAGE_VARIABLE)
    if not image:
        raise RuntimeError(f"the modal stand-in needs {BASE_IMAGE_VARIABLE}: the local image that "
                           "Image.debian_slim() and a sandbox without an image run")
    return image


def labels(**extra: str) -> dict[str, str]:
    return {LABEL: key(), **extra}
