"""Agent names: what is allowed, and friendly names for agents created without one."""

from __future__ import annotations

import re
import secrets

from .errors import UsageError

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME_LENGTH = 63

_ADJECTIVES = (
    "amber", "brave", "calm", "deft", "eager", "fair", "glad", "hardy", "keen", "lucid",
    "merry", "nimble", "quick", "rapid", "sharp", "steady", "swift", "tidy", "vivid", "wise",
)
_NOUNS = (
    "otter", "heron", "falcon", "badger", "lynx", "marten", "osprey", "raven", "beaver", "ibex",
    "kestrel", "marmot", "panda", "puffin", "quokka", "robin", "stoat", "tapir", "wren", "yak",
)


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        reason = (
            f"longer than {MAX_NAME_LENGTH} characters"
            if len(name) > MAX_NAME_LENGTH
            else "use lowercase letters, digits and hyphens, starting and ending with a letter or digit"
        )
        raise UsageError(f"invalid agent name {name[:80]!r}: {reason}")
    return name


def generate_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.token_hex(2)}"
