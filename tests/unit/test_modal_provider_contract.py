"""The modal provider against the installed ``modal`` SDK, without Modal's cloud.

Its tests run it through the real SDK against a local Modal server (tests/modal_server). Two
things are checked here that those cannot: every SDK attribute the
provider's source touches, on every path (tested or not), exists in the SDK and takes the
keywords it is given; and the provider's own quick check for credentials (made without
importing the SDK) agrees with how the SDK resolves them.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import modal  # the real SDK
import modal.container_process
import modal.experimental
import modal.io_streams
import modal.types
import modal.volume
import pytest

from mngr.providers import modal as modal_provider

PROVIDER_FILES = [Path(modal_provider.__file__), Path(modal_provider.__file__).with_name("modal_exec.py")]
# The provider's local names for SDK objects, and what they are in the SDK.
RECEIVERS: dict[str, Any] = {
    "modal": modal,
    "experimental": modal.experimental,
    "sandbox": modal.Sandbox,
    "process": modal.container_process.ContainerProcess,
    "process.stdin": modal.io_streams.StreamWriter,
    "process.stdout": modal.io_streams.StreamReader,
    "process.stderr": modal.io_streams.StreamReader,
    "volume": modal.Volume,
    "index": modal.Volume,
    "batch": modal.volume.VolumeUploadContextManager,
    "image": modal.Image,
    "file_entry": modal.types.FileEntry,
    "app": modal.App,
    "self._app": modal.App,
}


def _uses() -> list[tuple[str, Any, list[str], int]]:
    """(the receiver and attribute path as written, the SDK object it names, the keywords of a
    call of it, the line) for every attribute the provider reads from an SDK object."""
    found = []
    for path in PROVIDER_FILES:
        tree = ast.parse(path.read_text())
        _mark_parents(tree)
        called = {id(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or isinstance(getattr(node, "parent", None), ast.Attribute):
                continue
            written = ast.unparse(node)
            for receiver, target in sorted(RECEIVERS.items(), key=lambda item: -len(item[0])):
                if written.startswith(receiver + ".") and written.count("(") == 0:
                    chain = written[len(receiver) + 1:].split(".")
                    call = called.get(id(node))
                    keywords = [keyword.arg for keyword in call.keywords if keyword.arg] if call else []
                    found.append((f"{path.name}:{written}", target, chain, keywords, node.lineno))
                    break
    return [(where, _resolve(target, chain, where), keywords, line) for where, target, chain, keywords, line in found]


def _resolve(target: Any, chain: list[str], where: str) -> Any:
    for name in chain:
        if isinstance(target, type) and hasattr(target, "__dataclass_fields__") and name in target.__dataclass_fields__:
            return None  # a field of a dataclass such as FileEntry
        assert hasattr(target, name), f"{where}: the SDK has no {name!r} on {target!r}"
        target = getattr(target, name)
    return target


def _mark_parents(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child.parent = node  # type: ignore[attr-defined]


def test_every_sdk_attribute_the_provider_uses_exists_and_takes_its_keywords() -> None:
    uses = _uses()
    written = {where.split(":", 1)[1] for where, _, _, _ in uses}
    # The check means something only if it sees the provider's main calls.
    for expected in ("modal.Sandbox.create", "modal.Sandbox.list", "modal.Volume.objects.list",
                     "modal.App.lookup", "sandbox.exec", "sandbox.snapshot_filesystem", "process.stdin.drain",
                     "volume.read_file", "experimental.image_delete", "modal.exception.NotFoundError"):
        assert expected in written, f"the check no longer sees {expected}"
    problems = []
    for where, target, keywords, line in uses:
        if not keywords or target is None:
            continue
        parameters = inspect.signature(target).parameters
        if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
            continue
        problems += [f"{where} (line {line}): the SDK takes no {keyword!r}" for keyword in keywords
                     if keyword not in parameters]
    assert problems == []


def test_the_sandbox_options_the_provider_passes_are_the_sdks() -> None:
    source = PROVIDER_FILES[0].read_text()
    tree = ast.parse(source)
    options: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(isinstance(key, ast.Constant) and key.value == "volumes"
                                              for key in node.keys):
            options |= {key.value for key in node.keys if isinstance(key, ast.Constant)}
        if (isinstance(node, ast.Subscript) and ast.unparse(node.value) == "options"
                and isinstance(node.slice, ast.Constant)):
            options.add(node.slice.value)
        if isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[0], ast.Constant) \
                and node.elts[0].value in ("cpu", "memory", "gpu", "region"):
            options.add(node.elts[0].value)
    assert {"app", "image", "volumes", "timeout", "cpu", "gpu", "outbound_cidr_allowlist"} <= options
    accepted = inspect.signature(modal.Sandbox.create).parameters
    assert sorted(options - set(accepted)) == []


_SDK_VERDICT = r"""
import json, modal.config
config = modal.config.config
print(json.dumps(bool(config.get("token_id") and config.get("token_secret"))
                 or bool(config.get("oauth_refresh_token") and config.get("oauth_client_id"))))
"""

_PROFILES = """
[alice]
token_id = "ak-alice"
token_secret = "as-alice"
active = true

[bob]
token_id = "ak-bob"
"""


@pytest.mark.parametrize(("case", "env", "config"), [
    ("nothing", {}, None),
    ("variables", {"MODAL_TOKEN_ID": "ak-1", "MODAL_TOKEN_SECRET": "as-1"}, None),
    ("only an id", {"MODAL_TOKEN_ID": "ak-1"}, None),
    ("the active profile", {}, _PROFILES),
    ("a chosen profile without a secret", {"MODAL_PROFILE": "bob"}, _PROFILES),
    ("a chosen profile and the secret from a variable", {"MODAL_PROFILE": "bob", "MODAL_TOKEN_SECRET": "as-2"},
     _PROFILES),
    ("a default profile", {}, '[default]\ntoken_id = "ak-d"\ntoken_secret = "as-d"\n'),
    ("a profile not named default, none active", {}, '[work]\ntoken_id = "ak-w"\ntoken_secret = "as-w"\n'),
])
def test_the_quick_credentials_check_agrees_with_the_sdk(tmp_path: Path, case: str, env: dict[str, str],
                                                          config: str | None) -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MODAL_") and key != "PYTHONPATH"}
    clean["HOME"] = str(tmp_path)
    clean["MODAL_CONFIG_PATH"] = str(tmp_path / "modal.toml")
    if config is not None:
        (tmp_path / "modal.toml").write_text(config)
    clean.update(env)
    sdk = subprocess.run([sys.executable, "-c", _SDK_VERDICT], capture_output=True, text=True, env=clean,
                         cwd=tmp_path, timeout=60)
    assert sdk.returncode == 0, sdk.stderr
    ours = subprocess.run([sys.executable, "-c", "from mngr.providers.modal import credentials_problem as c; "
                           "import json; print(json.dumps(c() == ''))"],
                          capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=60)
    assert ours.returncode == 0, ours.stderr
    assert json.loads(ours.stdout) == json.loads(sdk.stdout.strip().splitlines()[-1]), case
