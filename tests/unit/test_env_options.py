"""--env-file and --pass-env: dotenv lines read as a user writes them; a bad line is one
error naming file:line and never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from mngr.controller.env_options import agent_env, parse_env_lines, passed_env, read_env_file
from mngr.controller.errors import UsageError


def test_dotenv_lines_comments_quotes_and_export() -> None:
    text = (
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "SPACED =  padded value  \n"
        "export EXPORTED=yes\n"
        "EMPTY=\n"
        "COMMENTED=kept # dropped\n"
        "HASH=a#b\n"
        "SINGLE='$HOME \\n # kept'\n"
        'DOUBLE="line\\none \\"q\\" \\\\ tab\\t" # dropped\n'
        "EQUALS=a=b=c\n"
        "PLAIN=later wins\n"
    )
    assert parse_env_lines(text, "f.env") == {
        "PLAIN": "later wins", "SPACED": "padded value", "EXPORTED": "yes", "EMPTY": "", "COMMENTED": "kept",
        "HASH": "a#b", "SINGLE": "$HOME \\n # kept", "DOUBLE": 'line\none "q" \\ tab\t', "EQUALS": "a=b=c",
    }


@pytest.mark.parametrize(("line", "reason"), [
    ("NO_EQUALS_SIGN", "expected KEY=VALUE"),
    ("1BAD=secret-value", "invalid variable name '1BAD'"),
    ("BAD-NAME=secret-value", "invalid variable name"),
    ("OPEN='secret-value", "unterminated single quote in the value of OPEN"),
    ('OPEN="secret-value', "unterminated double quote in the value of OPEN"),
    ('AFTER="secret" value', "text after the closing quote in the value of AFTER"),
])
def test_a_bad_line_is_one_error_naming_file_and_line_not_the_value(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "job.env"
    path.write_text(f"# header\nGOOD=1\n{line}\n")
    with pytest.raises(UsageError) as error:
        read_env_file(str(path))
    message = str(error.value)
    assert message.startswith(f"{path}:3: ") and reason in message
    assert "secret" not in message and "\n" not in message


def test_a_missing_file_is_one_line() -> None:
    with pytest.raises(UsageError, match=r"^--env-file /no/such\.env: No such file or directory$"):
        read_env_file("/no/such.env")


def test_pass_env_takes_the_users_value_and_refuses_an_unset_one() -> None:
    assert passed_env(["A", "B"], {"A": "1", "B": "", "C": "3"}) == {"A": "1", "B": ""}
    with pytest.raises(UsageError, match=r"^--pass-env MISSING: not set in your environment$"):
        passed_env(["MISSING"], {"A": "1"})
    with pytest.raises(UsageError, match="invalid variable name"):
        passed_env(["A=1"], {"A=1": "x"})


def test_env_files_then_pass_env_then_env_later_winning(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    first.write_text("X=file-a\nY=file-a\nZ=file-a\nW=file-a\n")
    second.write_text("Y=file-b\n")
    assert agent_env([str(first), str(second)], ["Z", "W"], {"W": "given"}, {"Z": "passed", "W": "passed"}) == {
        "X": "file-a", "Y": "file-b", "Z": "passed", "W": "given"}
