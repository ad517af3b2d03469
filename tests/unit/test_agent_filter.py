"""The filter language of --include/--exclude, --sort and --fields, on listing rows in-process."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from mngr.controller.agent_filter import (
    FilterError,
    Selection,
    compile_filter,
    field_value,
    parse_fields,
    parse_sort,
    sorted_rows,
)


def _ago(seconds: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds")


def row(name: str = "web-1", state: str = "RUNNING", idle: float | None = 30.0, age: float = 600.0,
        labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"agent-{name}", "name": name, "type": "command", "state": state, "host": "local",
        "provider": "local", "work_dir": "/w", "command": "sleep 600", "created_at": _ago(age),
        "labels": labels or {}, "pid": 123, "exit_status": None, "idle_seconds": idle, "problem": None,
        "waiting_reason": None, "waiting_detail": "",
    }
    base.update(extra)
    return base


def matches(expression: str, subject: dict[str, Any], extra: tuple[str, ...] = ()) -> bool:
    return compile_filter(expression, extra)(subject)


# -- precedence and grouping -----------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    done = row(state="DONE", name="db")
    assert matches("state == done || name == x && state == running", done)
    assert not matches("(state == done || name == x) && state == running", done)
    assert matches("name == x && state == running || state == done", done)


def test_not_binds_tightest_and_negates_a_group() -> None:
    running = row()
    assert not matches("!state == running", running)
    assert matches("!state == done && name == web-1", running)
    assert matches("!(state == done || name == other)", running)
    assert not matches("!!(state == done)", running)
    assert matches("not state == done and name == web-1", running)


def test_words_and_symbols_are_the_same_operators() -> None:
    subject = row()
    for expression in ("state == running and idle > 10", "state == running && idle > 10",
                       "state = running && idle > 10"):
        assert matches(expression, subject)
    assert matches("name == nope or name == web-1", subject)


def test_whitespace_is_optional_around_operators() -> None:
    assert matches("state==running&&idle>10s", row())
    assert matches("(name=='web-1')", row())


# -- kinds of fields -------------------------------------------------------------------------


def test_states_compare_without_case_and_unknown_states_are_refused() -> None:
    assert matches("state == running", row())
    assert matches("state == 'RUNNING'", row())
    assert matches("state in [waiting, running]", row())
    assert matches("state ~ run*", row())
    with pytest.raises(FilterError, match="no state 'runing'"):
        compile_filter("state == runing")
    with pytest.raises(FilterError, match="not ordered"):
        compile_filter("state < running")


def test_durations_compare_in_seconds_whatever_the_unit() -> None:
    idle_two_hours = row(idle=7200.0)
    assert matches("idle > 1h", idle_two_hours)
    assert matches("idle >= 2h", idle_two_hours)
    assert matches("idle == 120m", idle_two_hours)
    assert not matches("idle > 1h30m1s && idle > 2h", idle_two_hours)
    assert matches("idle < 1d", idle_two_hours)
    assert matches("idle > 7199", idle_two_hours)
    assert matches("idle_seconds > 1h", idle_two_hours)
    assert matches("idle <= 0.5w", idle_two_hours)


def test_age_counts_from_created_at() -> None:
    assert matches("age > 5m && age < 15m", row(age=600))
    assert not matches("age > 1h", row(age=600))


def test_times_compare_as_instants_in_utc_by_default() -> None:
    subject = row(created_at="2026-12-06T12:00:00.000+00:00")
    assert matches("created_at > 2026-12-06", subject)
    assert matches("created_at < '2026-12-06T13:00'", subject)
    assert matches("created_at < 2026-12-06T13:30:00+01:00", subject)
    assert not matches("created_at >= 2026-12-07", subject)
    with pytest.raises(FilterError, match="is a time"):
        compile_filter("created_at > yesterday")


def test_numbers_compare_as_numbers_not_text() -> None:
    subject = row(pid=90)
    assert matches("pid < 100", subject)  # as text, "90" > "100"
    assert matches("pid in [1, 90.0]", subject)
    with pytest.raises(FilterError, match="is a number"):
        compile_filter("pid > many")


def test_text_compares_exactly_and_patterns_match_whole_values() -> None:
    subject = row(name="web-12")
    assert matches("name ~ 'web-*'", subject)
    assert matches("name ~ web-??", subject)
    assert not matches("name ~ web", subject)
    assert not matches("name ~ WEB-*", subject)
    assert matches("name !~ 'db-*'", subject)
    assert matches("name > web-1 && name < web-2", subject)
    assert matches("name not in [a, b]", subject)
    assert matches("command == 'sleep 600'", subject)


def test_quotes_keep_operators_spaces_and_keywords_as_text() -> None:
    subject = row(name="and", command="a && b || !c")
    assert matches("name == 'and'", subject)
    assert matches('command == "a && b || !c"', subject)
    assert matches(r"command ~ 'a \&& *'", subject)


def test_labels_are_tested_one_key_at_a_time() -> None:
    labelled = row(labels={"team": "web", "tier.level": "2"})
    bare = row(labels={})
    assert matches("labels.team == web", labelled)
    assert matches("labels.tier.level == 2", labelled)
    assert not matches("labels.team == web", bare)
    assert matches("labels.team != web", bare)  # != is the negation of ==
    assert matches("labels.team", labelled) and not matches("labels.team", bare)
    assert matches("!labels.team", bare)
    assert matches("labels", labelled) and not matches("labels", bare)
    with pytest.raises(FilterError, match=r"labels\.KEY"):
        compile_filter("labels == web")


def test_null_values_are_unset_and_order_nowhere() -> None:
    no_idle = row(idle=None)
    assert matches("idle == null", no_idle)
    assert not matches("idle != null", no_idle)
    assert not matches("idle > 1s", no_idle)
    assert not matches("idle < 1s", no_idle)
    assert matches("!(idle > 1s)", no_idle)
    assert matches("exit_status == null && problem == null", no_idle)
    assert not matches("waiting_detail", no_idle)  # an empty text is unset
    with pytest.raises(FilterError, match="only == and !="):
        compile_filter("idle > null")


def test_plugin_fields_compare_as_their_values_are() -> None:
    extra = ("cost", "owner")
    assert matches("cost > 9", row(cost=10), extra)
    assert not matches("cost > 9", row(cost="expensive"), extra)
    assert matches("owner == ann && owner ~ 'a*'", row(owner="ann"), extra)
    assert matches("cost == 10", row(cost=10.0), extra)
    assert matches("cost == 10", row(cost="10"), extra)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "message"), [
    ("", "empty filter"),
    ("   ", "empty filter"),
    ("nmae == x", "unknown field 'nmae'"),
    ("labels. == x", "labels. needs a label key"),
    ("state == running &&", "expected a field name at position 20, found the end"),
    ("(state == running", "expected ')'"),
    ("state == running)", "expected && or || or the end"),
    ("name == 'x", "unterminated quote"),
    ("name & x", "use && or ||"),
    ("name ==", "expected a value"),
    ("name in x", "expected a list"),
    ("name in [a,", "expected a value"),
    ("idle > soon", "is a duration"),
    ("idle ~ 1h", "patterns match text fields only"),
    ("== x", "expected a field name"),
    ("name == x y", "expected && or || or the end"),
])
def test_bad_expressions_say_what_and_where(expression: str, message: str) -> None:
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        compile_filter(expression)


def test_errors_are_one_line_and_name_the_option() -> None:
    with pytest.raises(FilterError) as raised:
        Selection(("name == x",), ("stat == y",)).compile()
    assert str(raised.value).startswith("--exclude 'stat == y': unknown field 'stat'")
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == 2


# -- includes and excludes -------------------------------------------------------------------


def test_a_row_passes_every_include_and_no_exclude() -> None:
    test = Selection(("state == running", "name ~ 'web-*'"), ("labels.keep == yes",)).compile()
    assert test(row("web-1"))
    assert not test(row("db-1"))
    assert not test(row("web-1", state="DONE"))
    assert not test(row("web-1", labels={"keep": "yes"}))
    assert Selection((), ("state == done",)).compile()(row())
    assert not Selection()


# -- sorting and fields ----------------------------------------------------------------------


def test_sort_by_several_keys_with_unset_values_last_either_way() -> None:
    rows = [row("b", idle=5), row("a", idle=None), row("c", idle=5), row("d", idle=50)]
    by_idle = sorted_rows(rows, parse_sort("idle,name"))
    assert [r["name"] for r in by_idle] == ["b", "c", "d", "a"]
    by_idle_down = sorted_rows(rows, parse_sort("-idle,-name"))
    assert [r["name"] for r in by_idle_down] == ["d", "c", "b", "a"]


def test_sort_by_label_state_and_age() -> None:
    rows = [row("x", labels={"team": "b"}, age=10), row("y", labels={"team": "a"}, age=30), row("z", age=20)]
    assert [r["name"] for r in sorted_rows(rows, parse_sort("labels.team"))] == ["y", "x", "z"]
    assert [r["name"] for r in sorted_rows(rows, parse_sort("-age"))] == ["y", "z", "x"]
    states = [row("p", state="WAITING"), row("q", state="DONE")]
    assert [r["name"] for r in sorted_rows(states, parse_sort("state"))] == ["q", "p"]


def test_sort_and_fields_refuse_unknown_fields() -> None:
    with pytest.raises(FilterError, match="unknown field 'nmae'"):
        parse_sort("name,-nmae")
    with pytest.raises(FilterError, match="empty field"):
        parse_sort("name,")
    with pytest.raises(FilterError, match=r"labels\.KEY"):
        parse_sort("labels")
    with pytest.raises(FilterError, match="unknown field 'colour'"):
        parse_fields("name,colour")
    assert parse_fields("name, labels.team ,age") == ["name", "labels.team", "age"]
    assert parse_fields("name,cost", ("cost",)) == ["name", "cost"]


def test_field_values_include_labels_and_derived_fields() -> None:
    subject = row(labels={"team": "web"}, idle=12.5, age=100)
    assert field_value(subject, "labels.team") == "web"
    assert field_value(subject, "labels.none") is None
    assert field_value(subject, "idle") == 12.5
    assert 99 <= field_value(subject, "age") < 200
    assert field_value(row(created_at=""), "age") is None


def test_every_column_of_the_listing_has_a_kind() -> None:
    from mngr.controller.agent_filter import FIELD_KINDS
    from mngr.controller.cli.common import AGENT_FIELDS

    # A new column still filters (as its values compare), but its kind says how to compare
    # and is what docs/commands/list.md documents: give it one in agent_filter.FIELD_KINDS.
    missing = [field for field in AGENT_FIELDS if field not in FIELD_KINDS]
    assert missing == [], f"listing columns without a kind in agent_filter.FIELD_KINDS: {missing}"


def test_one_key_of_the_work_dirs_origin_is_a_text_field() -> None:
    rows = [{"name": "a", "work_dir_origin": {"kind": "worktree", "branch": "mngr/a"}},
            {"name": "b", "work_dir_origin": {}}]
    test = Selection(("work_dir_origin.kind == worktree",), ()).compile(("name", "work_dir_origin"))
    assert [row["name"] for row in rows if test(row)] == ["a"]
    with pytest.raises(FilterError, match="work_dir_origin holds keys and values"):
        Selection(("work_dir_origin == x",), ()).compile(("name", "work_dir_origin"))


def test_archived_is_true_or_false_and_alone_holds_for_archived_agents() -> None:
    shelved, active = row(name="a", archived=True), row(name="b", archived=False)
    for expression, expected in (("archived", [True, False]), ("!archived", [False, True]),
                                 ("archived == true", [True, False]), ("archived == no", [False, True]),
                                 ("archived != yes", [False, True]), ("archived in [true]", [True, False])):
        assert [matches(expression, subject) for subject in (shelved, active)] == expected, expression
    for expression, message in (("archived == maybe", "archived is true or false, not 'maybe'"),
                                ("archived > false", "not ordered"), ("archived ~ t*", "patterns match text")):
        with pytest.raises(FilterError, match=message):
            compile_filter(expression)
    assert [r["name"] for r in sorted_rows([shelved, active], parse_sort("archived,name"))] == ["b", "a"]


def test_cleanups_criteria_are_filters_that_select_what_they_say() -> None:
    from mngr.controller.commands.cleanup import selection

    old_idle = row(name="old-idle", age=40 * 86400, idle=3 * 3600)
    old_stopped = row(name="old-stopped", state="STOPPED", age=40 * 86400, idle=None)
    young_idle = row(name="young-idle", age=3600, idle=3 * 3600)
    everyone = (old_idle, old_stopped, young_idle)

    def chosen(*criteria: str) -> list[str]:
        test = Selection(criteria, ()).compile()
        return [subject["name"] for subject in everyone if test(subject)]

    assert selection(None, None, ()) == ()
    assert chosen(*selection(30 * 86400.0, None, ())) == ["old-idle", "old-stopped"]
    assert chosen(*selection(None, 7200.0, ())) == ["old-idle", "young-idle"]  # a stopped agent has no idle time
    assert chosen(*selection(30 * 86400.0, 7200.0, ())) == ["old-idle"]
    assert chosen(*selection(None, None, ("STOPPED", "DONE"))) == ["old-stopped"]
    assert chosen(*selection(30 * 86400.0, None, ("running",))) == ["old-idle"]
