"""The terminal renderer behind transcripts: each control sequence with the bytes a terminal
would receive (a pty turns a program's "\\n" into "\\r\\n"), feeding in pieces, and hostile
input. tests/integration/test_terminal_rendering.py compares the same kind of input with
what tmux itself renders."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mngr.controller.terminal_text import TerminalStream, plain_lines

ESC = "\x1b"
CSI = "\x1b["


def numbered(count: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {i}\r\n" for i in range(count))


CASES = {
    # name: (what the program's output reached the terminal as, the lines shown)
    "cursor forward leaves a gap": ("a" + CSI + "1Cb", ["a b"]),
    "cursor forward, default count": ("a" + CSI + "Cb", ["a b"]),
    "carriage return overwrites": ("50%\r100%\r\n", ["100%"]),
    "a shorter redraw keeps the tail": ("hello world\rHEY", ["HEYlo world"]),
    "line feed alone keeps the column": ("one\ntwo", ["one", "   two"]),
    "backspace": ("abc\b\bX", ["aXc"]),
    "backspace at the first column stays": ("\b\bab", ["ab"]),
    "tab stops every 8 columns": ("a\tb\r\n12345678\tx", ["a       b", "12345678        x"]),
    "cursor back": ("abcdef" + CSI + "3DXY", ["abcXYf"]),
    "cursor horizontal absolute": ("abc" + CSI + "10Gx", ["abc      x"]),
    "horizontal position absolute": ("abc" + CSI + "6`x", ["abc  x"]),
    "cursor up": ("l1\r\nl2\r\nl3" + CSI + "2AUP", ["l1UP", "l2", "l3"]),
    "cursor down stops at the screen's bottom": ("l1" + CSI + "3Bdown", ["l1", "", "", "  down"]),
    "cursor position and HVP": ("x\r\ny\r\nz" + CSI + "2;5HP" + CSI + "1;1fQ", ["Q", "y   P", "z"]),
    "cursor position, defaults": ("abc\r\ndef" + CSI + "HZ", ["Zbc", "def"]),
    "erase to the end of the line": ("abcdef" + CSI + "3D" + CSI + "K", ["abc"]),
    "erase to the start of the line": ("abcdef" + CSI + "3D" + CSI + "1K", ["    ef"]),
    "erase the line": ("abcdef" + CSI + "2Kz", ["      z"]),
    "erase below": ("l1\r\nl2\r\nl3" + CSI + "2;1H" + CSI + "J", ["l1"]),
    "erase above": ("l1\r\nl2\r\nl3" + CSI + "2;2H" + CSI + "1J", ["", "", "l3"]),
    "erase characters": ("abcdef" + CSI + "2G" + CSI + "2X", ["a  def"]),
    "delete characters": ("abcdef" + CSI + "2G" + CSI + "2P", ["adef"]),
    "insert characters": ("abcdef" + CSI + "2G" + CSI + "2@", ["a  bcdef"]),
    "save and restore (ESC 7, ESC 8)": ("abc" + ESC + "7\r\nxyz" + ESC + "8Q", ["abcQ", "xyz"]),
    "save and restore (CSI s, CSI u)": ("abc" + CSI + "s\r\nxyz" + CSI + "uQ", ["abcQ", "xyz"]),
    "colours, titles, links are dropped": (
        CSI + "1;31mred" + CSI + "0m " + ESC + "]0;title\x07" + ESC + "]8;;http://x" + ESC + "\\link"
        + ESC + "]8;;" + ESC + "\\", ["red link"]),
    "character sets are ignored": (ESC + "(0qqq" + ESC + "(B ok", ["qqq ok"]),
    "private modes are ignored": (CSI + "?25lx" + CSI + "?25h" + CSI + "?2004hy" + CSI + ">4;1mz" + CSI + " q",
                                  ["xyz"]),
    "device control string is dropped": ("a" + ESC + "P1$r" + ESC + "\\b", ["ab"]),
    "nul and delete are nothing": ("a\x00b\x7fc", ["abc"]),
    "vertical tab and form feed feed lines": ("a\x0bb\x0cc", ["a", " b", "  c"]),
    "printed trailing spaces stay, blank cells go": ("prompt> \r\nabc" + CSI + "5C\r\n", ["prompt> ", "abc"]),
    "blank lines in between stay": ("a\r\n\r\n\r\nb\r\n", ["a", "", "", "b"]),
    "wraps at 200 columns": ("x" * 450 + "\r\nend", ["x" * 200, "x" * 200, "x" * 50, "end"]),
    "exactly 200 columns does not wrap before the newline": ("y" * 200 + "\r\nend", ["y" * 200, "end"]),
    "backspace after the last column lands on it": ("y" * 200 + "\bZ", ["y" * 199 + "Z"]),
    "erase after the last column erases nothing": ("y" * 200 + CSI + "K", ["y" * 200]),
    "autowrap off: the last column is overwritten": (CSI + "?7l" + "z" * 210 + "END" + CSI + "?7h",
                                                     ["z" * 199 + "D"]),
    "wide characters take two columns": ("日本語" + CSI + "1Cx", ["日本語 x"]),
    "wide characters wrap whole": ("日本" * 101, ["日本" * 50, "日本" * 50, "日本"]),
    "a wide character at the last column moves to the next line": ("a" + "日" * 100, ["a" + "日" * 99, "日"]),
    "overwriting half a wide character blanks it": ("日本語" + CSI + "2Gx", [" x本語"]),
    "combining marks stay with their letter": ("e\u0301t\u00e9" + CSI + "1Cx", ["e\u0301t\u00e9 x"]),
    "emoji": ("ok 🎉 done", ["ok 🎉 done"]),
    "alternate screen leaves no trace (1049)": ("main\r\n" + CSI + "?1049hALT SCREEN" + CSI + "?1049lback",
                                                ["main", "back"]),
    "alternate screen restores the cursor (1049)": ("hello" + CSI + "?1049h" + CSI + "10;10Hstuff" + CSI
                                                    + "?1049l world", ["hello world"]),
    "alternate screen (47): the cursor stays where it went": ("main\r\n" + CSI + "?47hALT" + CSI + "?47lback", ["main", "   back"]),
    "alternate screen (1047)": ("main\r\n" + CSI + "?1047hALT" + CSI + "?1047lback", ["main", "   back"]),
    "lines scrolled on the alternate screen are not history": (
        "pre\r\n" + CSI + "?1049h" + numbered(80) + CSI + "?1049lpost\r\n", ["pre", "post"]),
    "still on the alternate screen: it comes last": ("main\r\n" + CSI + "?1049h" + CSI + "3;1Hframe",
                                                     ["main", "", "", "frame"]),
    "clearing the screen keeps what it showed": (numbered(3) + CSI + "H" + CSI + "2Jafter",
                                                 ["line 0", "line 1", "line 2", "after"]),
    "clearing the scrollback keeps the transcript": (numbered(3) + CSI + "H" + CSI + "2J" + CSI + "3Jafter",
                                                     ["line 0", "line 1", "line 2", "after"]),
    "clearing without moving the cursor": (numbered(3) + CSI + "2Jx",
                                           ["line 0", "line 1", "line 2", "", "", "", "x"]),
    "reset": ("a\r\nb\r\n" + ESC + "cafter", ["a", "b", "after"]),
    "scrolling region": ("a\r\nb\r\nc\r\nd\r\n" + CSI + "2;3r" + CSI + "3;1H\n\nX" + CSI + "r",
                         ["b", "c", "a", "", "X", "d"]),
    "reverse index at the top scrolls down": ("a\r\nb\r\n" + CSI + "H" + ESC + "Mtop", ["top", "a", "b"]),
    "insert lines": ("a\r\nb\r\nc" + CSI + "2;1H" + CSI + "LX", ["a", "X", "b", "c"]),
    "delete lines": ("a\r\nb\r\nc" + CSI + "2;1H" + CSI + "M", ["a", "c"]),
    "scroll up": ("a\r\nb\r\nc" + CSI + "S", ["a", "b", "c"]),
    "scroll down": ("a\r\nb\r\nc" + CSI + "T", ["", "a", "b", "c"]),
    "next and previous line": ("a" + CSI + "2Eb" + CSI + "1Fc", ["a", "c", "b"]),
    "line position absolute": (CSI + "3dthree" + CSI + "1d" + CSI + "2`a", [" a", "", "three"]),
    "a redraw in place, as ink does it": (
        "frame one\r\nline b\r\n" + CSI + "2K" + CSI + "1A" + CSI + "2K" + CSI + "1A" + CSI + "2K" + CSI
        + "Gframe two\r\nline c\r\n", ["frame two", "line c"]),
    "cursor position past the screen is clamped": (CSI + "99;999HZ", [""] * 49 + [" " * 199 + "Z"]),
    "empty": ("", []),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_what_a_terminal_shows(name: str) -> None:
    text, expected = CASES[name]
    assert plain_lines(text) == expected


def test_a_cursor_position_addresses_the_screen_not_the_history() -> None:
    # 120 lines and the cursor on the empty row below them: the screen shows lines 71 to 119.
    assert plain_lines(numbered(120) + CSI + "1;1HTOP") == [f"line {i}" for i in range(71)] + [
        "TOPe 71"] + [f"line {i}" for i in range(72, 120)]


def test_a_long_history_survives_and_the_screen_stays_50_rows() -> None:
    lines = plain_lines(numbered(100_000) + CSI + "50;1Hbottom")
    assert lines[:3] == ["line 0", "line 1", "line 2"] and len(lines) == 100_001
    assert lines[-2:] == ["line 99999", "bottom"]


def test_settled_lines_are_those_the_cursor_has_left() -> None:
    terminal = TerminalStream()
    terminal.feed("one\r\ntwo\r\nprompt> ")
    assert terminal.take_settled() == ["one", "two"]
    assert terminal.take_settled() == []
    terminal.feed("ls\r\nfile\r\n")
    assert terminal.take_settled() == ["prompt> ls", "file"]
    terminal.feed("prompt> ")
    assert terminal.take_all() == ["prompt> "]


def test_a_line_redrawn_before_the_cursor_leaves_it_is_taken_redrawn() -> None:
    terminal = TerminalStream()
    terminal.feed("Downloading 10%")
    assert terminal.take_settled() == []
    terminal.feed("\rDownloading 100%\r\n")
    assert terminal.take_settled() == ["Downloading 100%"]


def test_the_alternate_screen_holds_back_settled_lines_until_it_is_left() -> None:
    terminal = TerminalStream()
    terminal.feed("before\r\n" + CSI + "?1049h" + numbered(10))
    assert terminal.take_settled() == ["before"]
    terminal.feed(CSI + "?1049lafter\r\n")
    assert terminal.take_settled() == ["after"]


def test_a_cleared_screen_does_not_hand_out_lines_twice() -> None:
    terminal = TerminalStream()
    terminal.feed(numbered(3))
    assert terminal.take_settled() == ["line 0", "line 1", "line 2"]
    terminal.feed(CSI + "H" + CSI + "2Jnew\r\n")
    assert terminal.take_settled() == ["new"]


def test_past_the_screen_lines_go_to_history_in_order() -> None:
    terminal = TerminalStream(width=10, height=3)
    terminal.feed(numbered(6, "n"))
    assert terminal.take_settled() == [f"n {i}" for i in range(6)]
    terminal.feed("abcdefghijKLM\r\n")
    assert terminal.take_all() == ["abcdefghij", "KLM"]


LINE_ORIENTED = st.lists(
    st.one_of(
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=300),
        st.sampled_from(["\x1b[1;32mPASSED\x1b[0m", "50%\r100%", "\t|\t|", "日本語テキスト", "", "e\u0301",
                         "\x1b]0;title\x07x", "a\x1b[Kb", "x" * 200, "🎉" * 101]),
    ),
    max_size=120,
)


@settings(derandomize=True, deadline=None)
@given(LINE_ORIENTED, st.lists(st.integers(0, 120), max_size=6))
def test_feeding_in_pieces_cut_after_newlines_gives_the_same_lines(lines: list[str], cuts: list[int]) -> None:
    text = "".join(line + "\r\n" for line in lines)
    whole = plain_lines(text)
    ends = sorted({sum(len(line) + 2 for line in lines[:cut]) for cut in cuts} | {len(text)})
    terminal = TerminalStream()
    pieces: list[str] = []
    start = 0
    for end in ends:
        terminal.feed(text[start:end])
        pieces += terminal.take_settled()
        start = end
    assert pieces + terminal.take_all() == whole
    assert len(whole) >= len(lines)


@settings(derandomize=True, deadline=None)
@given(LINE_ORIENTED)
def test_line_oriented_output_is_its_lines_with_escapes_gone(lines: list[str]) -> None:
    simple = [line for line in lines if line.isascii() and line.isprintable() and len(line) <= 200]
    assert plain_lines("".join(f"\x1b[33m{line}\x1b[0m\r\n" for line in simple)) == simple


ANYTHING = st.lists(st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\r", "\n", "\b", "\t", "\x1b7", "\x1b8", "\x1bM", "\x1bD", "\x1bE", "\x1bc", "日", "\u0301",
                     "\x1b[?1049h", "\x1b[?1049l", "\x1b[?47h", "\x1b[?1047l", "\x1b[?7l", "\x1b[?7h", "\x1b["]),
    st.builds(lambda params, final: f"\x1b[{params}{final}",
              st.from_regex(r"\A[0-9;]{0,8}\Z"), st.sampled_from(list("ABCDEFGHJKLMPSTX@`adefrsu"))),
), max_size=60)


@settings(derandomize=True, deadline=None)
@given(ANYTHING, st.integers(1, 12), st.integers(1, 6))
def test_any_output_renders_without_error_within_the_width(parts: list[str], width: int, height: int) -> None:
    terminal = TerminalStream(width=width, height=height)
    shown: list[str] = []
    for part in parts:
        terminal.feed(part)
        shown += terminal.take_settled()
    shown += terminal.take_all()
    for line in shown:
        assert sum(_terminal_width(char) for char in line) <= width


def _terminal_width(char: str) -> int:
    """Cells a terminal gives a character, as wcwidth does: 2 for wide ones, 0 for marks and
    format characters (but the soft hyphen, which is drawn), 1 for the rest."""
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2
    zero_width = unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf")
    return 0 if zero_width and char != "\u00ad" else 1
