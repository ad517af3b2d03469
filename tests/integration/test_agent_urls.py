"""Agents' URLs through the CLI on this machine's tmux: declared with `create --port`, by an
agent type's `ports`, and published by the agent itself in `$MNGR_AGENT_DIR/urls`; shown by
`mngr list` (json and the table) and carried by a clone and a snapshot."""

from __future__ import annotations

import json

import pytest

from tests.conftest import wait_for

PUBLISH = ('printf "%s\\n" "dash=8123" "web=http://localhost:8001/app?x=1" "not a line" "bad name=80" '
           '"zero=0" "file=file:///etc/passwd" >> "$MNGR_AGENT_DIR/urls"; echo published; sleep 600')


def _agents(sandbox) -> dict[str, dict]:
    listed = sandbox.mngr("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {agent["name"]: agent for agent in json.loads(listed.stdout)["agents"]}


def test_declared_ports_are_listed_in_order_and_in_the_table(sandbox) -> None:
    created = sandbox.mngr("create", "srv", "command", "--no-connect", "--port", "8000:web", "--port", "9000",
                           "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    urls = _agents(sandbox)["srv"]["urls"]
    assert list(urls.items()) == [("web", "http://localhost:8000/"), ("9000", "http://localhost:9000/")]
    table = sandbox.mngr("list").stdout.splitlines()
    assert table[0].split()[-1] == "URLS" and table[1].split()[-1] == "web,9000"
    sandbox.mngr("create", "plain", "command", "--no-connect", "--", "sleep", "600")
    assert _agents(sandbox)["plain"]["urls"] == {}
    fields = sandbox.mngr("list", "--fields", "name,urls", "--include", "urls.web")
    assert fields.returncode == 0, fields.stderr
    assert [line.split() for line in fields.stdout.splitlines()] == [
        ["NAME", "URLS"], ["srv", "9000=http://localhost:9000/,web=http://localhost:8000/"]]


def test_an_agent_publishes_urls_while_it_runs(sandbox) -> None:
    created = sandbox.mngr("create", "pub", "command", "--no-connect", "--port", "8000:web",
                           "--", "sh", "-c", PUBLISH)
    assert created.returncode == 0, created.stderr
    wait_for(lambda: "dash" in _agents(sandbox)["pub"]["urls"], "the published URL in the listing")
    # A published name replaces the declared one where it stands; lines that are not
    # NAME=PORT or NAME=http(s)-URL are skipped.
    assert list(_agents(sandbox)["pub"]["urls"].items()) == [
        ("web", "http://localhost:8001/app?x=1"), ("dash", "http://localhost:8123/")]
    stopped = sandbox.mngr("stop", "pub", "--format", "json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)[0]["urls"]["dash"] == "http://localhost:8123/"


def test_an_agent_types_ports_are_its_agents_urls(sandbox) -> None:
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(
        '[agent_types.notebook]\ncommand = "sleep 600"\nports = ["8888:lab", 6006]\n')
    created = sandbox.mngr("create", "nb", "notebook", "--no-connect", "--port", "7000:lab", "--port", "5000")
    assert created.returncode == 0, created.stderr
    # Given at create over the type's, by name.
    assert list(_agents(sandbox)["nb"]["urls"].items()) == [
        ("lab", "http://localhost:7000/"), ("6006", "http://localhost:6006/"), ("5000", "http://localhost:5000/")]


def test_a_bad_ports_setting_is_a_config_error(sandbox) -> None:
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text('[agent_types.bad]\ncommand = "sleep 600"\nports = ["http"]\n')
    failed = sandbox.mngr("create", "x", "bad", "--no-connect")
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines() == [
        "mngr: error: agent_types.bad.ports expects PORT[:NAME] with a port from 1 to 65535, got 'http'"]


@pytest.mark.parametrize(("spec", "message"), [
    ("0", "--port expects PORT[:NAME] with a port from 1 to 65535, got '0'"),
    ("65536:web", "--port expects PORT[:NAME] with a port from 1 to 65535, got '65536:web'"),
    ("web", "--port expects PORT[:NAME] with a port from 1 to 65535, got 'web'"),
    ("80:a b", "--port '80:a b': invalid name 'a b': letters, digits and _.- (at most 63), "
               "starting with a letter or digit"),
])
def test_a_bad_port_is_a_usage_error_and_makes_nothing(sandbox, spec: str, message: str) -> None:
    failed = sandbox.mngr("create", "x", "command", "--no-connect", "--port", spec, "--", "sleep", "600")
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [f"mngr: error: {message}"]
    assert sandbox.sessions() == [] and _agents(sandbox) == {}


def test_a_name_given_twice_is_a_usage_error(sandbox) -> None:
    failed = sandbox.mngr("create", "x", "command", "--no-connect", "--port", "80:web", "--port", "81:web",
                          "--", "sleep", "600")
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == ["mngr: error: --port: the name 'web' is given twice"]


def test_a_clone_and_a_snapshot_keep_the_declared_urls_not_the_published(sandbox) -> None:
    created = sandbox.mngr("create", "orig", "command", "--no-connect", "--port", "8000:web",
                           "--", "sh", "-c", PUBLISH)
    assert created.returncode == 0, created.stderr
    wait_for(lambda: "dash" in _agents(sandbox)["orig"]["urls"], "the published URL in the listing")
    assert sandbox.mngr("clone", "orig", "copy").returncode == 0
    snapshot = sandbox.mngr("snapshot", "orig", "--format", "{id}")
    assert snapshot.returncode == 0, snapshot.stderr
    restored = sandbox.mngr("create", "again", "--no-connect", "--snapshot", snapshot.stdout.strip())
    assert restored.returncode == 0, restored.stderr
    # The copies run the same command, which publishes again: wait for it, then compare.
    for name in ("copy", "again"):
        wait_for(lambda name=name: "dash" in _agents(sandbox)[name]["urls"], f"{name}'s published URL")
    listed = _agents(sandbox)
    assert all(listed[name]["urls"] == listed["orig"]["urls"] for name in ("copy", "again"))


def test_templates_ports_merge_by_name_with_port(sandbox) -> None:
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(
        '[templates.web]\nports = ["5173:preview", 6006]\n'
        '[templates.api]\nports = ["8080:preview"]\n'
        '[templates.broken]\nports = ["nope"]\n')
    created = sandbox.mngr("create", "site", "command", "-T", "web", "-T", "api", "--port", "9229:debug",
                           "--no-connect", "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    # A later template wins by name, where the first put it; --port adds to (or replaces) them.
    assert list(_agents(sandbox)["site"]["urls"].items()) == [
        ("preview", "http://localhost:8080/"), ("6006", "http://localhost:6006/"),
        ("debug", "http://localhost:9229/")]
    failed = sandbox.mngr("create", "x", "command", "-T", "broken", "--no-connect", "--", "sleep", "600")
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        "mngr: error: templates.broken.ports expects PORT[:NAME] with a port from 1 to 65535, got 'nope'"]
