"""An agent's URLs: the ones declared at create (its record's ``urls``) and the ones the
agent publishes while it runs, one ``NAME=PORT`` or ``NAME=URL`` line each in
``$MNGR_AGENT_DIR/urls`` (a published name replaces a declared one). Lines that are not
that are skipped: the file is the agent's, written by whatever it runs."""

import os

from . import agent_records, state
from .wire import RequestFailed

FILE_NAME = "urls"
_MOST_BYTES = 65536  # a published file is a few lines; more is not read
_MOST_URLS = 64
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")


def valid_name(name):
    # The controller's agent_urls.NAME_PATTERN, without importing re (every start pays for it).
    return 0 < len(name) <= 63 and name[0] in _NAME_FIRST and all(char in _NAME_REST for char in name)


def url_of(value):
    """A port or an http(s) URL as a URL; None for anything else."""
    value = value.strip()
    if value.isascii() and value.isdigit() and 0 < int(value) < 65536:
        return "http://localhost:%d/" % int(value)
    if value.startswith(("http://", "https://")) and len(value) <= 2048 and not any(
            char.isspace() or ord(char) < 32 for char in value):
        return value
    return None


def check_declared(urls):
    """CreateAgent.urls: refused whole if any is not a name and an http(s) URL."""
    for name, url in urls.items():
        if not valid_name(name):
            raise RequestFailed("invalid", "invalid URL name %r: letters, digits and _.-, starting with a letter "
                                           "or digit (at most 63)" % name[:80])
        if url_of(url) != url:
            raise RequestFailed("invalid", "invalid URL %r for %r: an http:// or https:// URL" % (url[:200], name))


def declared_of(record):
    """The record's declared URLs as (name, URL), in the order given at create."""
    return agent_records.named_pairs(record, "urls")


def published(agent_id):
    """What the agent wrote into its urls file, as (name, URL) in file order (later lines
    of one name win)."""
    try:
        with open(os.path.join(state.agent_dir(agent_id), FILE_NAME), "rb") as handle:
            data = handle.read(_MOST_BYTES)
    except (OSError, ValueError):
        return []
    found = {}
    for line in data.decode("utf-8", "replace").splitlines():
        name, equals, value = line.strip().partition("=")
        name = name.strip()
        url = url_of(value) if equals else None
        if url is not None and valid_name(name) and (name in found or len(found) < _MOST_URLS):
            found[name] = url
    return list(found.items())


def urls_of(agent_id, record):
    """{name: URL}: the declared ones in their order, then the published ones (which
    replace a declared one of the same name where it stands)."""
    urls = dict(declared_of(record))
    if agent_id:
        urls.update(published(agent_id))
    return urls
