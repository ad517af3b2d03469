"""The App of a click command: ``pass_app`` gives each command the invocation's App."""

from __future__ import annotations

import click

from .app import App

__all__ = ["App", "pass_app"]

pass_app = click.make_pass_decorator(App, ensure=True)
