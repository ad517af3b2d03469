"""`mngr provision` in-process (the commands layer, a real tmux and helper) and its usage
errors through the CLI. Its work on a real agent on an SSH host: test_remote_provision.py."""

from __future__ import annotations

import pytest

from mngr.controller.cli.app import App
from mngr.controller.commands import agents
from mngr.controller.commands.create import CreateRequest, create
from mngr.controller.commands.provision import NOTHING, ProvisionRequest, provision
from mngr.controller.errors import AgentNotFound


@pytest.fixture
def app(sandbox, monkeypatch: pytest.MonkeyPatch) -> App:
    sandbox.apply_env(monkeypatch)
    monkeypatch.chdir(sandbox.work_dir)
    return App()


def test_an_agent_mngr_gives_no_config_is_left_as_it_is(app: App, sandbox) -> None:
    create(app, CreateRequest("plain", agent_type="command", agent_args=("sleep", "600"), args_given=True))
    record_dir = next(sandbox.host_dir.glob("agents/*"))

    def files_but_the_state_log() -> list[str]:
        # state.json: the last state the event log holds, which the host daemon's watcher
        # writes (temp + rename) whenever it notices a change, provision or not.
        return sorted(path.name for path in record_dir.iterdir()
                      if path.name != "state.json" and not path.name.startswith(".state.json.tmp-"))

    before = files_but_the_state_log()
    for dry_run in (True, False):
        result = provision(app, ProvisionRequest(["plain"], dry_run=dry_run, restart=not dry_run))
        (done,) = result.provisioned
        assert (done.outcome, done.reason, done.changes(), done.restart) == (
            NOTHING, "mngr writes no CLI config for agents of type 'command'", [], "")
        assert not result.failed and not result.interrupted
    assert files_but_the_state_log() == before
    assert [done.info.name for done in provision(app, ProvisionRequest(every=True)).provisioned] == ["plain"]
    agents.destroy(app, agents.DestroyRequest(["plain"]))


def test_a_local_agent_runs_with_the_users_own_config_and_gets_nothing(sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.config_dir.mkdir(parents=True)
    (sandbox.config_dir / "config.toml").write_text(  # claude's interaction; a command that only waits
        "[agent_types.claudish]\nlike = 'claude'\ncommand = \"sh -c 'sleep 600' sh\"\n")
    sandbox.apply_env(monkeypatch)
    monkeypatch.chdir(sandbox.work_dir)
    app = App()
    create(app, CreateRequest("near", agent_type="claudish", attaching=True))
    (done,) = provision(app, ProvisionRequest(["near"])).provisioned
    assert (done.outcome, done.reason) == (NOTHING, "it runs with your own claude config on host 'local'")
    assert "agent_config" not in next(sandbox.host_dir.glob("agents/*/record.json")).read_text()
    agents.destroy(app, agents.DestroyRequest(["near"]))


def test_an_unknown_name_is_an_error_before_anything_is_done(app: App) -> None:
    create(app, CreateRequest("known", agent_type="command", agent_args=("sleep", "600"), args_given=True))
    with pytest.raises(AgentNotFound, match="no agent named 'nosuch'"):
        provision(app, ProvisionRequest(["known", "nosuch"]))
    agents.destroy(app, agents.DestroyRequest(["known"]))


@pytest.mark.parametrize(("args", "error"), [
    ((), "mngr: error: name at least one agent (or use --all, or --include EXPR)\n"),
    (("x", "--all"), "mngr: error: give agent names or --all, not both\n"),
    (("x", "--dry-run", "--restart"), "mngr: error: --dry-run changes nothing: it cannot --restart\n"),
    (("x", "--format", "yaml"), "mngr: error: unknown --format 'yaml': give human, json, jsonl, or a template that "
                                "names fields, such as '{name}'\n"),
])
def test_usage_errors_are_one_line_and_status_2(sandbox, args: tuple[str, ...], error: str) -> None:
    result = sandbox.mngr("provision", *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", error)
