"""Create templates: named sets of create options kept in config as ``[templates.NAME]``.

Every command that creates agents resolves templates the same way::

    merged = resolve(app.config.section("templates"), names)   # --template NAME..., in order
    options = apply(merged, given)                              # given: options set explicitly

- Templates apply in the order named; a later one wins key by key. ``env`` and ``labels``
  are tables and merge per key across templates.
- An option given explicitly (on the command line, or from an environment variable click
  reads) wins over every template. ``env`` and ``labels`` merge with the explicit ones,
  which win per key. ``args`` (the agent's words after ``--``) come from a template only
  when the command line has no ``--``.

The keys a template may hold, and their types, are checked with the rest of the
configuration (``TEMPLATE_FIELDS`` and ``validate`` in controller/config.py), so by the
time a command runs, every template has the right shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import agent_urls
from .config import TEMPLATE_FIELDS
from .errors import UsageError

if TYPE_CHECKING:
    import click

# Tables that merge per key (across templates, and with the explicit options); a
# template's ports become such a table, {name: URL}, as --port's do.
MERGED_TABLES = ("env", "labels", "ports")


def resolve(templates: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Merge the named templates, later ones winning; raise UsageError for an unknown name."""
    merged: dict[str, Any] = {}
    for name in names:
        template = templates.get(name)
        if not isinstance(template, Mapping):
            known = ", ".join(sorted(templates)) or "none"
            raise UsageError(f"unknown template {name!r} (known: {known})")
        for key, value in template.items():
            if key == "ports":
                ports = agent_urls.parse_ports([str(port) for port in value], f"templates.{name}.ports")
                merged[key] = {**merged.get(key, {}), **ports}
            elif key in MERGED_TABLES:
                merged[key] = {**merged.get(key, {}), **value}
            elif key == "args":
                merged[key] = list(value)
            else:
                merged[key] = value
    # work_dir stays as written: "~" means the home dir of the host the agent runs on,
    # which the provider resolves (locally for the local host, on the host for ssh).
    return merged


def apply(template: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The options to use: ``given`` (the explicit ones, by template key) over ``template``.

    A key missing from both is missing from the result; the command uses its own default.
    """
    unknown = set(given) - set(TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f"not template fields: {', '.join(sorted(unknown))}")
    result = dict(template)
    for key, value in given.items():
        if key in MERGED_TABLES:
            result[key] = {**template.get(key, {}), **value}
        else:
            result[key] = value
    return result


def explicit(ctx: click.Context, params: Mapping[str, str]) -> dict[str, Any]:
    """The options of ``params`` (template key -> click parameter name) given explicitly.

    An option counts as given when its value came from the command line or from an
    environment variable, not from its default.
    """
    from click.core import ParameterSource

    given: dict[str, Any] = {}
    for key, param_name in params.items():
        source = ctx.get_parameter_source(param_name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            given[key] = ctx.params[param_name]
    return given
