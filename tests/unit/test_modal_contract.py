"""The modal stand-in (tests/modal_standin) against the installed ``modal`` SDK.

Tests of the Modal provider run against the stand-in, since Modal's cloud is out of reach;
they prove something only while the stand-in is the SDK's shape. So: every module, class,
function, method and property the stand-in defines must exist in the SDK at the same place,
every parameter with the same name, kind and position, every default the SDK's own; and what
the SDK decides before it reaches Modal (missing credentials, arguments it refuses) must come
out of both as the same exception with the same message. An SDK upgrade that renames or
reshapes any of it fails here, before a provider test passes against a stand-in that no
longer tells the truth.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modal  # the real SDK: a dependency of mngr, so this runs wherever the suite runs
import pytest

import tests.modal_standin.modal as standin

STANDIN_PATH = Path(standin.__file__).resolve().parents[1]  # tests/modal_standin: what goes on PYTHONPATH
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _standin_modules() -> list[types.ModuleType]:
    names = sorted(info.name for info in pkgutil.iter_modules(standin.__path__) if not info.name.startswith("_"))
    return [importlib.import_module(f"{standin.__name__}.{name}") for name in names]


def _defined_here(module: types.ModuleType) -> dict[str, Any]:
    """The public classes and functions a stand-in module defines (not those it imports)."""
    return {name: value for name, value in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
            and value.__module__ == module.__name__}


def _sdk_module(module: types.ModuleType) -> types.ModuleType:
    return importlib.import_module("modal." + module.__name__.rsplit(".", 1)[1])


def _members(cls: type) -> dict[str, Any]:
    """A stand-in class's own public attributes (and ``__iter__``), undecorated."""
    return {name: value for name, value in vars(cls).items()
            if (not name.startswith("_") or name == "__iter__") and not isinstance(value, (str, int, frozenset))}


def _is_property_like(value: Any) -> bool:
    # The SDK's methods are descriptors too (synchronicity's MethodWithAio); its class-level
    # properties are synchronicity's classproperty, the stand-in's its own _ClassProperty.
    return isinstance(value, property) or "property" in type(value).__name__.lower()


def _parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    parameters = list(inspect.signature(function).parameters.values())
    if parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    return parameters


def _comparable_default(value: Any) -> Any:
    """A default both sides can be compared on; a marker for those only the SDK can name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    if isinstance(value, enum.Enum):
        return (value.name, value.value)
    if isinstance(value, (list, dict)) and not value:
        return (type(value).__name__, "empty")
    return "<opaque>"


def incompatibilities(ours: Callable[..., Any], theirs: Callable[..., Any]) -> list[str]:
    """How a call that is right for ``ours`` could be wrong for ``theirs`` (or mean another thing)."""
    our_parameters, their_parameters = _parameters(ours), _parameters(theirs)
    their_by_name = {parameter.name: parameter for parameter in their_parameters}
    our_positions = [parameter.name for parameter in our_parameters if parameter.kind in _POSITIONAL]
    their_positions = [parameter.name for parameter in their_parameters if parameter.kind in _POSITIONAL]
    problems = []
    for parameter in our_parameters:
        their = their_by_name.get(parameter.name)
        if their is None:
            problems.append(f"{parameter.name}: no such parameter in the SDK")
            continue
        if parameter.kind != their.kind:
            problems.append(f"{parameter.name}: {parameter.kind.description} here, {their.kind.description} in the SDK")
        elif parameter.kind in _POSITIONAL and our_positions.index(parameter.name) != their_positions.index(parameter.name):
            problems.append(f"{parameter.name}: position {our_positions.index(parameter.name)} here, "
                            f"{their_positions.index(parameter.name)} in the SDK")
        if parameter.kind in _VARIADIC:
            continue
        if (parameter.default is inspect.Parameter.empty) != (their.default is inspect.Parameter.empty):
            here = "required" if parameter.default is inspect.Parameter.empty else "optional"
            problems.append(f"{parameter.name}: {here} here, not in the SDK")
        elif parameter.default is not inspect.Parameter.empty:
            mine, sdk = _comparable_default(parameter.default), _comparable_default(their.default)
            if "<opaque>" not in (mine, sdk) and mine != sdk:
                problems.append(f"{parameter.name}: default {parameter.default!r} here, {their.default!r} in the SDK")
    for their in their_parameters:
        if their.name not in {parameter.name for parameter in our_parameters} and their.kind not in _VARIADIC \
                and their.default is inspect.Parameter.empty:
            problems.append(f"{their.name}: required by the SDK, missing here")
    return problems


def _all_callables() -> list[tuple[str, Callable[..., Any], Callable[..., Any] | None]]:
    """(where, stand-in callable, SDK callable) for every function and method of the stand-in."""
    pairs: list[tuple[str, Callable[..., Any], Callable[..., Any] | None]] = []
    for module in _standin_modules():
        sdk_module = _sdk_module(module)
        for name, value in _defined_here(module).items():
            where = f"modal.{module.__name__.rsplit('.', 1)[1]}.{name}"
            sdk_value = getattr(sdk_module, name, None)
            if inspect.isfunction(value):
                pairs.append((where, value, sdk_value))
            elif sdk_value is not None and not issubclass(value, (BaseException, enum.Enum)):
                for member, attribute in _members(value).items():
                    if not _is_property_like(attribute):
                        pairs.append((f"{where}.{member}", getattr(value, member), getattr(sdk_value, member, None)))
    return pairs


# -- names ---------------------------------------------------------------------------------------

def test_every_standin_module_class_and_function_exists_in_the_sdk() -> None:
    missing = []
    for module in _standin_modules():
        try:
            sdk_module = _sdk_module(module)
        except ImportError:
            missing.append(f"module modal.{module.__name__.rsplit('.', 1)[1]}")
            continue
        missing += [f"{sdk_module.__name__}.{name}" for name in _defined_here(module) if not hasattr(sdk_module, name)]
    missing += [f"modal.{name}" for name in standin.__all__ if not hasattr(modal, name)]
    assert not missing, f"the stand-in has what the SDK lacks: {missing}"


def test_every_method_and_property_exists_in_the_sdk_as_the_same_kind() -> None:
    problems = []
    for module in _standin_modules():
        sdk_module = _sdk_module(module)
        for name, value in _defined_here(module).items():
            sdk_class = getattr(sdk_module, name, None)
            if not inspect.isclass(value) or sdk_class is None or issubclass(value, (BaseException, enum.Enum)):
                continue
            for member, attribute in _members(value).items():
                sdk_attribute = inspect.getattr_static(sdk_class, member, None)
                if sdk_attribute is None:
                    problems.append(f"{name}.{member}: not in the SDK")
                elif _is_property_like(attribute) != _is_property_like(sdk_attribute):
                    kind = "a property" if _is_property_like(attribute) else "a method"
                    problems.append(f"{name}.{member}: {kind} here, not in the SDK")
    assert not problems, problems


# -- signatures ------------------------------------------------------------------------------------

def test_every_function_and_method_takes_the_sdks_parameters() -> None:
    pairs = _all_callables()
    assert len(pairs) > 30, "the checker found too little to check"
    problems = {where: incompatibilities(ours, theirs) for where, ours, theirs in pairs if theirs is not None}
    problems = {where: found for where, found in problems.items() if found}
    assert not problems, json.dumps(problems, indent=1)


def test_the_signature_check_catches_drift() -> None:
    """Guard against a checker that passes because it compares nothing."""
    def sdk(name: str, *, timeout: int | None = 300, tags: dict[str, str] | None = None) -> None: ...
    def renamed(label: str, *, timeout: int | None = 300) -> None: ...
    def other_default(name: str, *, timeout: int | None = 60) -> None: ...
    def positional(name: str, timeout: int | None = 300) -> None: ...
    def missing_required(*, timeout: int | None = 300) -> None: ...

    assert incompatibilities(sdk, sdk) == []
    assert any("label" in problem for problem in incompatibilities(renamed, sdk))
    assert any("default" in problem for problem in incompatibilities(other_default, sdk))
    assert any("keyword-only" in problem for problem in incompatibilities(positional, sdk))
    assert any("required by the SDK" in problem for problem in incompatibilities(missing_required, sdk))


# -- types the provider reads --------------------------------------------------------------------

def test_exceptions_have_the_sdks_hierarchy() -> None:
    from tests.modal_standin.modal import exception as ours

    problems = []
    for name, cls in _defined_here(ours).items():
        sdk_class = getattr(modal.exception, name)
        for base in cls.__mro__[1:]:
            if base.__module__ == ours.__name__ and not issubclass(sdk_class, getattr(modal.exception, base.__name__)):
                problems.append(f"{name} is a {base.__name__} here, not in the SDK")
        if issubclass(cls, Warning) != issubclass(sdk_class, Warning):
            problems.append(f"{name}: a warning in one, not in the other")
    assert not problems, problems


def test_enums_and_entries_match() -> None:
    from tests.modal_standin.modal import stream_type
    from tests.modal_standin.modal import types as entry_types

    for ours, theirs in ((stream_type.StreamType, modal.stream_type.StreamType),
                         (entry_types.FileEntryType, modal.types.FileEntryType)):
        assert {member.name: member.value for member in ours} == {member.name: member.value for member in theirs}
    assert ([field.name for field in dataclasses.fields(entry_types.FileEntry)]
            == [field.name for field in dataclasses.fields(modal.types.FileEntry)])


# -- behaviour before Modal is reached ------------------------------------------------------------

_PROBE = r'''
import json, sys
results = {}
try:
    import modal
except Exception as exc:
    print(json.dumps({"import": [type(exc).__name__, str(exc).strip().splitlines()[0]]}))
    sys.exit(0)

def attempt(key, call):
    try:
        call()
        results[key] = None
    except Exception as exc:
        results[key] = [type(exc).__name__, str(exc)]

Sandbox = modal.Sandbox
attempt("lookup", lambda: modal.App.lookup("mngr-contract", create_if_missing=True))
attempt("lookup-bad-name", lambda: modal.App.lookup("no spaces allowed"))
attempt("create-without-app", lambda: Sandbox.create("true"))
attempt("create-timeout-none", lambda: Sandbox.create(timeout=None))
attempt("create-relative-workdir", lambda: Sandbox.create(workdir="work"))
attempt("create-bad-name", lambda: Sandbox.create(name="a name"))
attempt("create-block-and-allowlist", lambda: Sandbox.create(block_network=True, outbound_cidr_allowlist=["10.0.0.0/8"]))
attempt("create-long-args", lambda: Sandbox.create("x" * 70000))
attempt("create-bad-env", lambda: Sandbox.create(env={"NOT-A-NAME": "1"}))
attempt("create-gpu-list", lambda: Sandbox.create(gpu=["a10g"]))
attempt("from-dict", lambda: modal.Secret.from_dict({"A": "1"}))
print(json.dumps(results))
'''


def _probe(tmp_path: Path, with_standin: bool, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the probe with no credentials anywhere (an empty home, no MODAL_ variables)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MODAL_", "MNGR_MODAL_")) and key != "PYTHONPATH"}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), MNGR_MODAL_STANDIN_DIR=str(tmp_path / "standin"), **(extra_env or {}))
    if with_standin:
        env["PYTHONPATH"] = str(STANDIN_PATH)
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("case", ["no credentials", "unknown profile", "unreadable config"])
def test_the_sdk_and_the_standin_refuse_the_same_things_the_same_way(tmp_path: Path, case: str) -> None:
    extra = {}
    if case == "unknown profile":
        extra["MODAL_PROFILE"] = "nowhere"
    elif case == "unreadable config":
        bad = tmp_path / "bad.toml"
        bad.write_text("this is = = not toml\n")
        extra["MODAL_CONFIG_PATH"] = str(bad)
    sdk, ours = _probe(tmp_path, False, extra), _probe(tmp_path, True, extra)
    assert ours == sdk
    if case == "no credentials":  # the line a provider shows; and nothing reached the network
        assert sdk["lookup"][0] == "AuthError" and "modal token new" in sdk["lookup"][1]
        assert sdk["create-without-app"][0] == "InvalidError"


def test_the_standin_shadows_the_sdk_on_pythonpath(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(STANDIN_PATH)}
    shown = subprocess.run([sys.executable, "-c", "import modal, modal.exception; print(modal.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert Path(shown.stdout.strip()).resolve() == Path(standin.__file__).resolve()
