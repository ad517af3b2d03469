"""Edges of the CLI: output formats, repeated state changes, plugins and config that go wrong."""

from __future__ import annotations

import json
import os


def create(sandbox, name: str, *extra: str) -> None:
    result = sandbox.mngr("create", name, "command", "--no-connect", *extra, "--", "sleep", "600")
    assert result.returncode == 0, result.stderr


def test_bad_format_is_refused_before_anything_changes(sandbox) -> None:
    bad = sandbox.mngr("create", "never", "command", "--no-connect", "--format", "{bogus}", "--", "sleep", "600")
    assert bad.returncode == 2 and "unknown field {bogus}" in bad.stderr
    assert sandbox.sessions() == []
    create(sandbox, "keep")
    stop = sandbox.mngr("stop", "keep", "--format", "{bogus}")
    assert stop.returncode == 2
    assert sandbox.sessions() == ["mngr-keep"]


def test_templates_render_absent_values_as_empty(sandbox) -> None:
    create(sandbox, "plain")
    sandbox.mngr("stop", "plain")
    result = sandbox.mngr("list", "--format", "[{labels[team]}] [{idle_seconds:.0f}] [{pid}]")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[] [] []\n"
    broken = sandbox.mngr("list", "--format", "{name:d}")
    assert broken.returncode == 2 and broken.stderr.startswith("mngr: error: cannot render --format")


def test_stop_and_start_many_print_one_json_list_and_say_what_happened(sandbox) -> None:
    create(sandbox, "a1")
    create(sandbox, "a2")
    stopped = sandbox.mngr("stop", "a1", "a2", "--format", "json")
    assert stopped.returncode == 0
    assert [row["state"] for row in json.loads(stopped.stdout)] == ["STOPPED", "STOPPED"]
    again = sandbox.mngr("stop", "a1")
    assert again.stdout.startswith("already stopped: agent a1")
    started = sandbox.mngr("start", "--all")
    assert started.stdout.count("started agent") == 2
    running = sandbox.mngr("start", "a1")
    assert running.stdout.startswith("already running: agent a1")
    events = [json.loads(line)["event"] for line in
              next((sandbox.host_dir / "agents").glob("*/events.jsonl")).read_text().splitlines()]
    assert events.count("stopped") == 1


def test_missing_tmux_is_named_as_such(sandbox) -> None:
    result = sandbox.mngr("create", "notmux", "command", "--no-connect", "--", "/bin/sleep", "600",
                          env={"PATH": "/nonexistent", "MNGR_HOST_DAEMON": "0"})
    assert result.returncode == 1
    # This machine is Debian (the tests' install.sh needs apt): the hint is apt's command.
    sudo = "" if os.getuid() == 0 else "sudo "
    assert result.stderr == ("mngr: error: host 'local': tmux is not installed (not found on PATH); "
                             f"install it with: {sudo}apt-get install tmux\n")


def test_no_providers_at_all(sandbox) -> None:
    env = {"MNGR_DISABLE_PLUGINS": "local,ssh,docker,modal"}
    listed = sandbox.mngr("list", env=env)
    assert listed.returncode == 0 and listed.stdout == "no agents\n"
    created = sandbox.mngr("create", "x", "command", "--no-connect", "--", "true", env=env)
    assert created.returncode == 2 and "unknown provider 'local' (known: none)" in created.stderr


def test_broken_plugins_are_named_and_skipped(sandbox) -> None:
    site = sandbox.root / "site"
    (site / "misspelled_plugin.py").parent.mkdir()
    (site / "misspelled_plugin.py").write_text(
        "from mngr.controller.plugin_spec import hookimpl\n\n@hookimpl\ndef mngr_providerz():\n    return []\n"
    )
    for dist, target in (("broken_plugin-1.0", "no_such_module_xyz"), ("misspelled-2.0", "misspelled_plugin")):
        info = site / f"{dist}.dist-info"
        info.mkdir()
        (info / "entry_points.txt").write_text(f"[mngr]\n{dist.split('-')[0]} = {target}\n")
    env = {"PYTHONPATH": str(site)}
    create_result = sandbox.mngr("create", "still-works", "command", "--no-connect", "--", "sleep", "600", env=env)
    assert create_result.returncode == 0, create_result.stderr
    warnings = create_result.stderr.splitlines()
    assert any("plugin 'broken_plugin' from broken-plugin failed to load: ModuleNotFoundError" in w for w in warnings)
    assert any("plugin 'misspelled' is disabled" in w and "mngr_providerz" in w for w in warnings)
    assert sandbox.mngr("list", "--format", "{name}", env=env).stdout == "still-works\n"


def test_config_set_refuses_typos_and_can_repair_a_broken_file(sandbox) -> None:
    unknown = sandbox.mngr("config", "set", "default_provder", "local")
    assert unknown.returncode == 2 and "unknown config key 'default_provder'" in unknown.stderr
    wrong_type = sandbox.mngr("config", "set", "agent_types.bot.ready_quiet_seconds", '"soon"')
    assert wrong_type.returncode == 2 and "must be a number" in wrong_type.stderr
    assert not (sandbox.config_dir / "config.toml").exists()
    sandbox.config_dir.mkdir(exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text('agent_quiet_seconds = "x"\n')
    assert sandbox.mngr("list").returncode == 1
    assert sandbox.mngr("config", "path", "--scope", "user").returncode == 0
    assert sandbox.mngr("--help").returncode == 0  # plugins' commands need the config: left out
    repaired = sandbox.mngr("config", "set", "agent_quiet_seconds", "2")
    assert repaired.returncode == 0, repaired.stderr
    assert sandbox.mngr("list").returncode == 0
