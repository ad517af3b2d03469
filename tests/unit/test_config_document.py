"""Setting and removing keys in a config file keeps the rest of it as the user wrote it."""

from __future__ import annotations

from pathlib import Path

from mngr.controller import config_document
from mngr.controller.config_document import parse, render, set_value, unset_value

_FILE = Path("config.toml")

WRITTEN_BY_HAND = """\
# mngr, my way
default_provider = "local"   # ssh when travelling

# slow machine
agent_quiet_seconds = 15

# bots I use
[agent_types.bot]
command = "python3 -m bot"  # the one from ~/src/bot
ready_pattern = "> "

[hosts.box]
address = "me@box"    # the big one
"""


def _changed(text: str, change) -> str:  # type: ignore[no-untyped-def]
    document = parse(text, _FILE)
    change(document)
    return render(document, text)


def test_setting_an_existing_key_changes_only_its_value() -> None:
    after = _changed(WRITTEN_BY_HAND, lambda d: set_value(d, ["agent_quiet_seconds"], 30))
    assert after == WRITTEN_BY_HAND.replace("agent_quiet_seconds = 15", "agent_quiet_seconds = 30")
    nested = _changed(WRITTEN_BY_HAND, lambda d: set_value(d, ["hosts", "box", "address"], "me@box2"))
    assert nested == WRITTEN_BY_HAND.replace('"me@box"    # the big one', '"me@box2"    # the big one')


def test_set_then_unset_gives_back_the_same_bytes() -> None:
    for parts, value in [(["resident"], False), (["agent_types", "bot", "description"], "mine"),
                         (["agent_types", "new", "command"], "new --x"), (["templates", "gpu", "provider"], "modal"),
                         (["notify", "on_waiting"], "notify-send waiting")]:
        added = _changed(WRITTEN_BY_HAND, lambda d, parts=parts, value=value: set_value(d, parts, value))
        assert added != WRITTEN_BY_HAND
        assert parse(added, _FILE).unwrap()["agent_types"]["bot"]["command"] == "python3 -m bot"
        removed = _changed(added, lambda d, parts=parts: unset_value(d, parts))
        assert removed == WRITTEN_BY_HAND, parts


def test_a_new_key_goes_where_a_person_would_put_it() -> None:
    top = _changed(WRITTEN_BY_HAND, lambda d: set_value(d, ["resident"], False))
    assert "agent_quiet_seconds = 15\nresident = false\n\n# bots I use\n[agent_types.bot]" in top
    in_table = _changed(WRITTEN_BY_HAND, lambda d: set_value(d, ["agent_types", "bot", "description"], "mine"))
    assert 'ready_pattern = "> "\ndescription = "mine"\n\n[hosts.box]' in in_table
    sibling = _changed(WRITTEN_BY_HAND, lambda d: set_value(d, ["agent_types", "new", "command"], "n"))
    assert 'ready_pattern = "> "\n\n[agent_types.new]\ncommand = "n"\n\n[hosts.box]' in sibling
    only_tables = "# header\n\n# bots\n[agent_types.bot]\ncommand = \"b\"\n"
    first = _changed(only_tables, lambda d: set_value(d, ["resident"], False))
    assert first == "# header\n\nresident = false\n\n# bots\n[agent_types.bot]\ncommand = \"b\"\n"
    new_file = _changed("", lambda d: set_value(d, ["templates", "gpu", "provider"], "modal"))
    assert new_file == '[templates.gpu]\nprovider = "modal"\n'


def test_unset_removes_the_tables_it_empties_and_reports_a_missing_key() -> None:
    document = parse(WRITTEN_BY_HAND, _FILE)
    assert unset_value(document, ["hosts", "box", "address"])
    assert "hosts" not in document.unwrap()
    assert "[hosts" not in document.as_string() and "# slow machine" in document.as_string()
    assert not unset_value(document, ["hosts", "box", "address"])
    assert not unset_value(document, ["default_provider", "x"])  # not a table: nothing to remove
    assert not unset_value(document, ["agent_types", "bot", "nosuch"])
    assert document.unwrap()["agent_types"]["bot"]["ready_pattern"] == "> "


def test_invalid_toml_is_one_config_error_naming_the_file() -> None:
    try:
        parse("[broken\n", _FILE)
    except config_document.ConfigError as exc:
        assert str(exc).startswith("invalid TOML in config.toml: ")
    else:
        raise AssertionError("invalid TOML was accepted")


def test_tables_written_as_dotted_keys_or_inline_are_changed_in_place() -> None:
    dotted = 'agent_types.bot.command = "x"  # mine\nagent_types.bot.ready_pattern = "> "\n'
    added = _changed(dotted, lambda d: set_value(d, ["agent_types", "bot", "description"], "d"))
    assert parse(added, _FILE).unwrap() == {"agent_types": {"bot": {"command": "x", "ready_pattern": "> ",
                                                                      "description": "d"}}}
    assert added.startswith('agent_types.bot.command = "x"  # mine\n')
    assert _changed(added, lambda d: unset_value(d, ["agent_types", "bot", "description"])) == dotted
    inline = '[providers]\ndocker = {host = "unix:///run/docker.sock"}\n'
    nested = _changed(inline, lambda d: set_value(d, ["providers", "docker", "opts", "x"], 1))
    assert parse(nested, _FILE).unwrap() == {"providers": {"docker": {"host": "unix:///run/docker.sock",
                                                                       "opts": {"x": 1}}}}
    assert _changed(nested, lambda d: unset_value(d, ["providers", "docker", "opts", "x"])) == inline


def test_a_table_value_becomes_a_table_of_its_own() -> None:
    added = _changed("resident = true\n", lambda d: set_value(d, ["agent_types", "bot"], {"command": "z"}))
    assert added == 'resident = true\n\n[agent_types.bot]\ncommand = "z"\n'
