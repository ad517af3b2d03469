"""Plugins end to end: the example plugin in examples/, installed with pip as a user would,
and found through its entry point by real mngr commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mngr-example-plugin"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with the example plugin installed in it by pip (put it on PYTHONPATH)."""
    site = tmp_path_factory.mktemp("example-site")
    # Built from a copy: a build writes into its source tree (build/, *.egg-info).
    source = tmp_path_factory.mktemp("example-source") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    assert list(site.glob("mngr_example_plugin-1.0.dist-info/entry_points.txt"))
    yield site


@pytest.fixture
def with_example(sandbox, example_site: Path):  # type: ignore[no-untyped-def]
    sandbox.env["PYTHONPATH"] = str(example_site)
    sandbox.env["MNGR_EXAMPLE_AUDIT_LOG"] = str(sandbox.root / "audit.jsonl")
    return sandbox


def _audit(sandbox) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    path = sandbox.root / "audit.jsonl"
    if not path.exists():
        return []
    return [(record["event"], record.get("agent", record["host"]))
            for record in map(json.loads, path.read_text().splitlines())]


def test_the_example_plugin_adds_an_agent_type_a_field_a_command_and_hears_events(with_example) -> None:
    box = with_example
    listed = json.loads(box.mngr("plugin", "list", "--format", "json").stdout)
    example = next(plugin for plugin in listed if plugin["name"] == "example")
    assert example["status"] == "loaded" and example["origin"] == "mngr-example-plugin"
    assert example["hooks"] == ["mngr_agent_types", "mngr_cli_commands", "mngr_list_fields", "mngr_on_agent",
                                "mngr_on_host"]
    assert example["detail"].endswith("mngr_example_plugin.py")

    created = box.mngr("create", "hi", "greeter", "--no-connect", "--work-dir", str(box.work_dir))
    assert created.returncode == 0, created.stderr
    assert box.mngr("message", "hi", "ping").returncode == 0
    wait_for(lambda: "you said: ping" in box.mngr("capture", "hi").stdout, "the greeter's echo")
    assert "hello, I am hi" in box.mngr("capture", "hi").stdout

    shown = box.mngr("list", "--format", "{name} {type} {work_dir_name}")
    assert shown.stdout.split() == ["hi", "greeter", box.work_dir.name], shown.stderr
    row = json.loads(box.mngr("list", "--format", "json").stdout)["agents"][0]
    assert row["work_dir_name"] == box.work_dir.name

    command = box.mngr("greetings")
    assert command.returncode == 0 and command.stdout.startswith("greeter: greets"), command.stderr
    assert "greetings" in box.mngr("--help").stdout

    for action in ("stop", "start", "destroy"):
        assert box.mngr(action, *(["-f"] if action == "destroy" else []), "hi").returncode == 0
    assert _audit(box) == [(f"{phase}_{action}", "hi") for action in ("create", "stop", "start", "destroy")
                           for phase in ("before", "after")]


def test_a_listener_can_refuse_an_action_and_nothing_is_made(with_example) -> None:
    refused = with_example.mngr("create", "forbidden-one", "greeter", "--no-connect")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("mngr: error: plugin 'example' stopped create: agents named 'forbidden-one' "
                                      "are not allowed here")
    assert with_example.sessions() == [] and with_example.mngr("list").stdout == "no agents\n"


@pytest.mark.parametrize("how", ["environment", "config"])
def test_a_plugin_can_be_disabled(with_example, how: str) -> None:
    env = {}
    if how == "environment":
        env["MNGR_DISABLE_PLUGINS"] = "example"
    else:
        with_example.config_dir.mkdir(exist_ok=True)
        (with_example.config_dir / "config.toml").write_text('[plugins]\ndisabled = ["example"]\n')
    listed = json.loads(with_example.mngr("plugin", "list", "--format", "json", env=env).stdout)
    assert next(plugin for plugin in listed if plugin["name"] == "example")["status"] == "disabled"
    missing = with_example.mngr("create", "hi", "greeter", "--no-connect", env=env)
    assert missing.returncode == 2 and "unknown agent type 'greeter'" in missing.stderr
    assert "greetings" not in with_example.mngr("--help", env=env).stdout


def test_a_plugin_that_breaks_inside_a_hook_is_named_and_the_command_goes_on(sandbox) -> None:
    site = sandbox.root / "site"
    site.mkdir()
    (site / "faulty_plugin.py").write_text(
        "from mngr.controller.plugin_spec import hookimpl\n\n"
        "@hookimpl\ndef mngr_list_fields():\n    return {'boom': lambda row: 1 / 0, 'name': lambda row: 'x'}\n\n"
        "@hookimpl\ndef mngr_on_agent(event):\n    if event.startswith('after_'):\n        raise RuntimeError('oops')\n"
    )
    info = site / "faulty-1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text("[mngr]\nfaulty = faulty_plugin\n")
    env = {"PYTHONPATH": str(site)}
    created = sandbox.mngr("create", "a", "command", "--no-connect", "--", "sleep", "600", env=env)
    assert created.returncode == 0, created.stderr
    assert "plugin 'faulty' failed in after_create: RuntimeError: oops" in created.stderr
    listed = sandbox.mngr("list", "--format", "json", env=env)
    assert listed.returncode == 0
    row = json.loads(listed.stdout)["agents"][0]
    assert row["name"] == "a" and row["boom"] is None  # mngr's own field kept; the broken one empty
    assert "list field 'name' is taken" in listed.stderr and "list field 'boom' failed: ZeroDivisionError" in listed.stderr


def test_clone_and_migrate_make_agents_too_so_a_listener_can_refuse_them(with_example) -> None:
    box = with_example
    (box.config_dir).mkdir(exist_ok=True)
    (box.config_dir / "config.toml").write_text("[hosts.elsewhere]\n")  # an ssh host, never reached
    assert box.mngr("create", "ok", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    refused = box.mngr("clone", "ok", "forbidden-copy")
    assert refused.returncode == 1
    assert refused.stderr == ("mngr: error: plugin 'example' stopped create: agents named 'forbidden-copy' "
                              "are not allowed here\n")
    assert box.sessions() == ["mngr-ok"] and not (box.host_dir / "work" / "forbidden-copy").exists()

    # Made while the plugin was off; with it on, moving it is making it again elsewhere.
    made = box.mngr("create", "forbidden-old", "command", "--no-connect", "--", "sleep", "600",
                    env={"MNGR_DISABLE_PLUGINS": "example"})
    assert made.returncode == 0, made.stderr
    moved = box.mngr("migrate", "forbidden-old", "--to-host", "elsewhere", "--in", "ssh")
    assert moved.returncode == 1
    assert moved.stderr == ("mngr: error: plugin 'example' stopped create: agents named 'forbidden-old' "
                            "are not allowed here\n")
    listed = json.loads(box.mngr("list", "--format", "json").stdout)["agents"]
    assert sorted((row["name"], row["host"], row["state"] in ("RUNNING", "WAITING")) for row in listed) == [
        ("forbidden-old", "local", True), ("ok", "local", True)]
    assert [event for event in _audit(box) if event[0].endswith("_create")] == [
        ("before_create", "ok"), ("after_create", "ok")]
    cloned = box.mngr("clone", "ok", "ok-copy")
    assert cloned.returncode == 0, cloned.stderr
    assert _audit(box)[-2:] == [("before_create", "ok-copy"), ("after_create", "ok-copy")]


def test_stop_start_and_destroy_of_many_report_the_refused_one_and_do_the_rest(sandbox) -> None:
    site = sandbox.root / "site"
    site.mkdir()
    (site / "holding_plugin.py").write_text(
        "from mngr.controller.plugin_spec import hookimpl\n\n"
        "@hookimpl\ndef mngr_on_agent(event, agent):\n"
        "    if event in ('before_stop', 'before_start', 'before_destroy') and agent.startswith('held-'):\n"
        "        raise RuntimeError(f'{agent} is held')\n"
    )
    info = site / "holding-1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text("[mngr]\nholding = holding_plugin\n")
    env = {"PYTHONPATH": str(site)}
    names = ["a", "held-b", "c", "d"]
    for name in names:
        assert sandbox.mngr("create", name, "command", "--no-connect", "--", "sleep", "600", env=env).returncode == 0
    for action, verb in (("stop", "stopped"), ("start", "started"), ("destroy", "destroyed")):
        if action == "start":  # the refused one is running still: stop it without the plugin
            assert sandbox.mngr("stop", "held-b").returncode == 0
        done = sandbox.mngr(action, *(["-f"] if action == "destroy" else []), *names, env=env)
        assert done.returncode == 1, (action, done.stdout)
        assert done.stderr == f"mngr: error: {action} held-b: plugin 'holding' stopped {action}: held-b is held\n"
        assert sorted(line.split()[:3] for line in done.stdout.splitlines()) == [
            [verb, "agent", name] for name in ("a", "c", "d")], done.stdout
    assert sandbox.sessions() == [] and [row["name"] for row in json.loads(
        sandbox.mngr("list", "--format", "json").stdout)["agents"]] == ["held-b"]
