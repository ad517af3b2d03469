"""`mngr create --template`: options from [templates.NAME] in config, through the real CLI and tmux."""

from __future__ import annotations

import json
import shlex

from tests.conftest import wait_for


def agents(sandbox) -> dict[str, dict]:
    result = sandbox.mngr("list", "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["errors"] == []
    return {agent["name"]: agent for agent in document["agents"]}


def write_user_config(sandbox, text: str) -> None:
    sandbox.config_dir.mkdir(parents=True, exist_ok=True)
    (sandbox.config_dir / "config.toml").write_text(text)


def env_dump_args(sandbox, out_name: str, *names: str) -> list[str]:
    """Agent args that write the named variables, one per line, to a file, then sleep."""
    out = sandbox.root / out_name
    script = "; ".join(f'printf "%s\\n" "${name}" >> {shlex.quote(str(out))}' for name in names)
    return ["sh", "-c", f"{script}; exec sleep 600"]


def toml_list(words: list[str]) -> str:
    return json.dumps(words)  # a JSON list of strings is a TOML array


def test_template_sets_type_env_labels_and_args(sandbox) -> None:
    args = env_dump_args(sandbox, "out.txt", "FOO", "BAR")
    write_user_config(sandbox, (
        "[templates.job]\n"
        'agent_type = "command"\n'
        f"args = {toml_list(args)}\n"
        "connect = false\n"
        '[templates.job.env]\nFOO = "from template"\nBAR = "bar"\n'
        '[templates.job.labels]\nteam = "infra"\n'
    ))
    result = sandbox.mngr("create", "templated", "--template", "job")
    assert result.returncode == 0, result.stderr
    assert "not attaching" not in result.stderr  # connect = false came from the template
    agent = agents(sandbox)["templated"]
    assert agent["type"] == "command"
    assert agent["labels"] == {"team": "infra"}
    assert agent["command"] == shlex.join(args)
    out = sandbox.root / "out.txt"
    assert wait_for(lambda: out.exists() and out.read_text().count("\n") == 2 and out.read_text(),
                    "agent output") == "from template\nbar\n"


def test_later_template_wins_and_env_and_labels_merge(sandbox) -> None:
    args = env_dump_args(sandbox, "out.txt", "A", "B", "C")
    write_user_config(sandbox, (
        "[templates.first]\n"
        'agent_type = "claude"\n'
        f"args = {toml_list(['sleep', '600'])}\n"
        '[templates.first.env]\nA = "first"\nB = "first"\n'
        '[templates.first.labels]\nteam = "a"\nsize = "small"\n'
        "[templates.second]\n"
        'agent_type = "command"\n'
        f"args = {toml_list(args)}\n"
        '[templates.second.env]\nB = "second"\nC = "second"\n'
        '[templates.second.labels]\nsize = "big"\n'
    ))
    # Through the default command (`mngr NAME ...` is `mngr create NAME ...`), short form -T.
    result = sandbox.mngr("merged", "-T", "first", "-T", "second", "--no-connect")
    assert result.returncode == 0, result.stderr
    agent = agents(sandbox)["merged"]
    assert agent["type"] == "command"
    assert agent["command"] == shlex.join(args)
    assert agent["labels"] == {"team": "a", "size": "big"}
    out = sandbox.root / "out.txt"
    assert wait_for(lambda: out.exists() and out.read_text().count("\n") == 3 and out.read_text(),
                    "agent output") == "first\nsecond\nsecond\n"


def test_command_line_options_win_over_templates(sandbox) -> None:
    args = env_dump_args(sandbox, "out.txt", "FOO", "KEEP")
    marker = sandbox.root / "echoer-ran"
    write_user_config(sandbox, (
        f"[agent_types.echoer]\ncommand = 'touch {marker}; sleep'\n"
        "[templates.t]\n"
        'agent_type = "echoer"\n'
        'args = ["600"]\n'
        "connect = false\n"
        '[templates.t.env]\nFOO = "template"\nKEEP = "kept"\n'
        '[templates.t.labels]\nteam = "template"\n'
    ))
    result = sandbox.mngr("create", "flags", "-T", "t", "--agent-type", "command", "--env", "FOO=flag",
                          "--label", "team=flag", "--connect", "--", *args)
    assert result.returncode == 0, result.stderr
    assert "not attaching" in result.stderr  # --connect beat connect = false
    agent = agents(sandbox)["flags"]
    assert agent["type"] == "command"
    assert agent["command"] == shlex.join(args)
    assert agent["labels"] == {"team": "flag"}
    out = sandbox.root / "out.txt"
    assert wait_for(lambda: out.exists() and out.read_text().count("\n") == 2 and out.read_text(),
                    "agent output") == "flag\nkept\n"
    assert not marker.exists()

    # A positional AGENT_TYPE is explicit too; with no '--' the template's args are used.
    positional = sandbox.mngr("create", "positional", "command", "-T", "t")
    assert positional.returncode == 1
    assert positional.stderr == (
        "mngr: error: agent type 'command' needs '600', which was not found on PATH on host 'local'\n"
    )
    # Without overrides the template's own type and args run.
    plain = sandbox.mngr("create", "plain", "-T", "t")
    assert plain.returncode == 0, plain.stderr
    assert agents(sandbox)["plain"]["type"] == "echoer"
    assert wait_for(marker.exists, "echoer marker")


def test_unknown_template_is_one_line_and_creates_nothing(sandbox) -> None:
    write_user_config(sandbox, '[templates.b]\nagent_type = "command"\n[templates.a]\nconnect = false\n')
    result = sandbox.mngr("create", "ghost", "-T", "a", "--template", "x", "--no-connect", "--", "sleep", "600")
    assert result.returncode == 2
    assert result.stderr == "mngr: error: unknown template 'x' (known: a, b)\n"
    assert agents(sandbox) == {} and sandbox.sessions() == []


def test_invalid_template_in_a_file_is_a_clear_error(sandbox) -> None:
    config = sandbox.config_dir / "config.toml"
    write_user_config(sandbox, '[templates.x]\nagent_type = "command"\nbogus = 1\n')
    result = sandbox.mngr("create", "bad", "-T", "x", "--no-connect", "--", "sleep", "600")
    assert result.returncode == 1
    assert result.stderr.startswith(f"mngr: error: {config}: unknown key templates.x.bogus (known: ")
    assert result.stderr.count("\n") == 1
    assert sandbox.sessions() == []

    write_user_config(sandbox, '[templates.x]\nname = "fixed"\n')
    named = sandbox.mngr("create", "-T", "x", "--no-connect", "--", "sleep", "600")
    assert named.returncode == 1
    assert "templates.x.name: a template cannot set the agent name" in named.stderr
    assert sandbox.sessions() == []


def test_config_set_checks_template_keys(sandbox) -> None:
    config = sandbox.config_dir / "config.toml"
    refused = sandbox.mngr("config", "set", "templates.x.bogus", "1")
    assert refused.returncode == 2
    assert "unknown key templates.x.bogus" in refused.stderr and refused.stderr.count("\n") == 1
    assert not config.exists(), "a rejected key must not be written"
    wrong_type = sandbox.mngr("config", "set", "templates.x.connect", "yes")
    assert wrong_type.returncode == 2 and "templates.x.connect must be a boolean" in wrong_type.stderr
    assert not config.exists()
    no_name = sandbox.mngr("config", "set", "templates.x.name", "fixed")
    assert no_name.returncode == 2 and "cannot set the agent name" in no_name.stderr

    for key, value in [("templates.x.agent_type", "command"), ("templates.x.args", '["sleep", "600"]'),
                       ("templates.x.env.GREETING", "hi"), ("templates.x.connect", "false")]:
        result = sandbox.mngr("config", "set", key, value)
        assert result.returncode == 0, result.stderr
    assert sandbox.mngr("config", "get", "templates.x.env.GREETING").stdout == "hi\n"
    created = sandbox.mngr("create", "from-set", "-T", "x")
    assert created.returncode == 0, created.stderr
    assert agents(sandbox)["from-set"]["command"] == "sleep 600"


def test_project_template_overrides_user_template_key_by_key(sandbox) -> None:
    args = env_dump_args(sandbox, "out.txt", "A", "B")
    write_user_config(sandbox, (
        "[templates.shared]\n"
        'agent_type = "command"\n'
        'args = ["sleep", "600"]\n'
        '[templates.shared.env]\nA = "user"\nB = "user"\n'
        '[templates.shared.labels]\nscope = "user"\nowner = "me"\n'
    ))
    (sandbox.work_dir / ".mngr").mkdir()
    (sandbox.work_dir / ".mngr" / "config.toml").write_text(
        "[templates.shared]\n"
        f"args = {toml_list(args)}\n"
        '[templates.shared.env]\nB = "project"\n'
        '[templates.shared.labels]\nscope = "project"\n'
    )
    result = sandbox.mngr("create", "layered", "-T", "shared", "--no-connect")
    assert result.returncode == 0, result.stderr
    agent = agents(sandbox)["layered"]
    assert agent["type"] == "command"  # from the user file
    assert agent["command"] == shlex.join(args)  # from the project file
    assert agent["labels"] == {"scope": "project", "owner": "me"}
    out = sandbox.root / "out.txt"
    assert wait_for(lambda: out.exists() and out.read_text().count("\n") == 2 and out.read_text(),
                    "agent output") == "user\nproject\n"


def test_template_work_dir_provider_and_initial_message(sandbox) -> None:
    project = sandbox.root / "home" / "proj"
    project.mkdir(parents=True)
    received = sandbox.root / "received.txt"
    reader = f'while IFS= read -r line; do printf "%s\\n" "$line" >> {received}; done'
    write_user_config(sandbox, (
        "[templates.listen]\n"
        'agent_type = "command"\n'
        'provider = "local"\n'
        'host = "local"\n'
        'work_dir = "~/proj"\n'
        'initial_message = "hello from a template"\n'
        "ready_timeout = 30\n"
        "connect = false\n"
        f"args = {toml_list(['sh', '-c', reader])}\n"
    ))
    result = sandbox.mngr("create", "listener", "-T", "listen", env={"HOME": str(sandbox.root / "home")})
    assert result.returncode == 0, result.stderr
    agent = agents(sandbox)["listener"]
    assert agent["work_dir"] == str(project)
    assert agent["provider"] == "local" and agent["host"] == "local"
    assert wait_for(lambda: received.exists() and received.read_text(), "message") == "hello from a template\n"

    # --work-dir and --in on the command line win over the template's.
    other = sandbox.mngr("create", "elsewhere", "-T", "listen", "--work-dir", str(sandbox.work_dir),
                         "--in", "nowhere")
    assert other.returncode == 2 and "unknown provider 'nowhere'" in other.stderr


def test_template_from_the_environment(sandbox) -> None:
    env = {"MNGR_TEMPLATES__QUICK__AGENT_TYPE": "command", "MNGR_TEMPLATES__QUICK__ARGS": '["sleep", "600"]',
           "MNGR_TEMPLATES__QUICK__LABELS": '{ kind = "quick" }'}
    result = sandbox.mngr("create", "quick", "-T", "quick", "--no-connect", env=env)
    assert result.returncode == 0, result.stderr
    agent = agents(sandbox)["quick"]
    assert agent["command"] == "sleep 600" and agent["labels"] == {"kind": "quick"}
