"""An agent's environment from the command line: ``--env-file PATH`` and ``--pass-env VAR``.

An env file holds dotenv lines: ``KEY=VALUE``, optionally ``export KEY=VALUE``; blank lines
and lines starting with ``#`` are skipped. A value may be quoted: in single quotes it is
taken as written, in double quotes ``\\n``, ``\\t``, ``\\"`` and ``\\\\`` are escapes; an
unquoted value ends at `` #`` (a comment) and loses its surrounding blanks. A bad line is an
error naming the file and line, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .errors import UsageError

VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def read_env_file(path: str) -> dict[str, str]:
    """The variables the env file at ``path`` sets, later lines winning."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
        raise UsageError(f"--env-file {path}: {reason}") from None
    return parse_env_lines(text, path)


def parse_env_lines(text: str, origin: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        key, separator, rest = stripped.partition("=")
        key = key.strip()
        if not separator:
            raise UsageError(f"{origin}:{number}: expected KEY=VALUE")
        if not VARIABLE_NAME.match(key):
            raise UsageError(f"{origin}:{number}: invalid variable name {key[:40]!r}")
        try:
            values[key] = _value(rest.strip())
        except ValueError as exc:
            raise UsageError(f"{origin}:{number}: {exc} in the value of {key}") from None
    return values


def _value(raw: str) -> str:
    if raw[:1] == "'":
        end = raw.find("'", 1)
        if end < 0:
            raise ValueError("unterminated single quote")
        _only_comment_after(raw[end + 1:])
        return raw[1:end]
    if raw[:1] == '"':
        chars: list[str] = []
        index = 1
        while index < len(raw):
            char = raw[index]
            if char == "\\" and index + 1 < len(raw):
                following = raw[index + 1]
                chars.append(_ESCAPES.get(following, "\\" + following))
                index += 2
                continue
            if char == '"':
                _only_comment_after(raw[index + 1:])
                return "".join(chars)
            chars.append(char)
            index += 1
        raise ValueError("unterminated double quote")
    comment = re.search(r"\s#", raw)
    return (raw[:comment.start()] if comment else raw).strip()


def _only_comment_after(rest: str) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise ValueError("text after the closing quote")


def passed_env(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """``--pass-env`` names with their values in ``environ`` (the user's environment)."""
    values = {}
    for name in names:
        if not VARIABLE_NAME.match(name):
            raise UsageError(f"--pass-env: invalid variable name {name[:40]!r}")
        if name not in environ:
            raise UsageError(f"--pass-env {name}: not set in your environment")
        values[name] = environ[name]
    return values


def agent_env(env_files: Iterable[str], pass_names: Iterable[str], given: Mapping[str, str],
              environ: Mapping[str, str]) -> dict[str, str]:
    """The variables the options set: env files in order, then ``--pass-env``, then
    ``--env`` (``given``), later winning."""
    values: dict[str, str] = {}
    for path in env_files:
        values.update(read_env_file(path))
    values.update(passed_env(pass_names, environ))
    values.update(given)
    return values
