"""Rendering what a terminal program printed into the lines a terminal would show.

An output log is a stream, not a screen: ``TerminalStream`` keeps a screen of ``height``
rows (the part of the output that cursor moves can still reach) and, above it, the rows that
scrolled away. Those are settled for good: they are the history, as in a terminal's
scrollback. Lines are wrapped at ``width`` columns.

What it interprets: CR, LF (and VT, FF), BS, TAB (stops every 8 columns); cursor moves
(CUU, CUD, CUF, CUB, CNL, CPL, CHA, HPA, VPA, CUP, HVP); erasing (EL, ED, ECH); DCH, ICH,
IL, DL, SU, SD; the scrolling region (DECSTBM) with IND, RI and NEL; save and restore of the
cursor (ESC 7 and 8, CSI s and u); autowrap (mode ?7); the alternate screen (modes ?47,
?1047, ?1049). Colours and other attributes, titles and links (OSC), device control strings
and character set designations are dropped; any other sequence is ignored.

Choices where a transcript differs from a screen:
- Clearing the whole main screen (ED 2, or a reset) first moves what it showed into the
  history, as tmux does with its default scroll-on-clear: `clear` must not erase the record.
- What a full-screen program draws on the alternate screen is never history: it is redrawn
  frame after frame (an editor, a pager), and leaving the alternate screen brings back the
  main screen as it was, exactly as on a terminal. Only while a program is still on it does
  ``take_all`` add the alternate screen's rows at the end: that is what the screen shows now.
- Cells never written, or erased, are blank: they are trimmed at the end of a line and show
  as spaces inside it. Spaces the program printed are kept (a prompt's "> ").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from typing import ClassVar

# Sequences that change nothing in the text: SGR (colours, attributes), OSC (titles, links;
# ended by BEL or ST), DCS/SOS/PM/APC strings, character set designations, keypad modes.
# Removed in one pass up front: it is the bulk of the escapes in real output.
_NO_OP_ESCAPES = re.compile(
    r"\x1b\[[0-9;:]*m"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[PX^_][^\x1b]*\x1b\\"
    r"|\x1b[()*+][0-~]"
    r"|\x1b[=>]"
)


@functools.lru_cache(maxsize=4)
def _tokens(width: int) -> re.Pattern[str]:
    return re.compile(
        rf"((?:[ -~]{{0,{width}}}\r\n)+)"  # 1: whole lines of plain text that fit: most output
        r"|([^\x00-\x1f\x7f-\x9f]+)"  # 2: printable text
        r"|(\r\n)"  # 3: the commonest pair of controls, in one step
        r"|\x1b\[([0-?]*)([ -/]*)([@-~])"  # 4, 5, 6: CSI parameters, intermediates, final byte
        r"|\x1b([ -/]*[0-~])"  # 7: other escape sequences
        r"|([\x00-\x1f\x7f-\x9f])"  # 8: a control character (a stray ESC too)
    )


_PLAIN_LINES, _PRINTABLE, _CRLF, _CSI_FINAL, _ESCAPE, _CONTROL = 1, 2, 3, 6, 7, 8

# A row is a list of cells, or (until it is changed) a str of plain ASCII text, a cell per
# character. A cell is a str: a character (with any combining marks), _BLANK for a cell
# nothing is written in, or "" for the right half of a wide character.
_BLANK = "\x00"
_WIDE_RIGHT = ""
_TAB_STOP = 8
_ALTERNATE_MODES = ("?1049", "?1047", "?47")

Row = list[str] | str


def _cell_width(char: str) -> int:
    # The soft hyphen is a format character that terminals draw (wcwidth gives it 1, as tmux).
    if char != "\u00ad" and (unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf")):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _render(row: Row) -> str:
    if type(row) is str:
        return row
    return "".join(row).rstrip(_BLANK).replace(_BLANK, " ")


def _numbers(params: str, default: int = 1) -> list[int]:
    """CSI parameters; a missing or zero one is ``default`` (as the cursor moves count)."""
    if params.isdigit():
        return [int(params) or default]
    values = []
    for field in params.split(";"):
        digits = field.split(":", 1)[0]
        value = int(digits) if digits.isdigit() else 0
        values.append(value or default)
    return values


class TerminalStream:
    """A terminal of ``width`` x ``height`` cells fed a stream of output, keeping its history.

    ``feed`` text as it comes; ``take_settled`` hands out the lines above the cursor that
    were not taken yet, ``take_all`` every line not taken yet. Feeding the output in pieces
    gives the same lines as feeding it whole, as long as a piece never ends inside an escape
    sequence or a line that a later piece moves back into (cut pieces after a newline).
    """

    def __init__(self, width: int = 200, height: int = 50) -> None:
        self.width = width
        self.height = height
        self._history: list[str] = []
        self._history_start = 0  # the number of history lines already taken and dropped
        self._taken = 0  # lines handed out, counted from the first line of the stream
        self._main: list[Row] = []  # the main screen's rows; missing rows at the end are blank
        self._alternate: list[Row] | None = None  # the alternate screen while it is shown
        self._saved_main_cursor = (0, 0)
        self._row = 0
        self._col = 0  # == width: the last column was just written, the next character wraps
        self._top = 0
        self._bottom = height - 1
        self._autowrap = True
        self._saved_cursor = (0, 0)
        self._widths: dict[str, int] = {}
        self._narrow: set[str] = set()  # the characters seen so far that take one cell

    # -- reading ---------------------------------------------------------------------------

    def take_settled(self) -> list[str]:
        """Lines above the cursor on the main screen, not taken yet: later output seldom changes them."""
        cursor_row = self._row if self._alternate is None else self._saved_main_cursor[0]
        return self._take(self._scrolled + cursor_row)

    def take_all(self) -> list[str]:
        """Every line not taken yet, down to the last with text on it (the cursor's, say).

        While the alternate screen is shown, its rows come last: that is the screen now.
        """
        main = self._main
        cursor_row = self._row if self._alternate is None else self._saved_main_cursor[0]
        used = max(self._last_used(main), cursor_row)
        lines = self._take(self._scrolled + used)
        if self._alternate is not None:
            alternate = self._alternate
            lines += [_render(row) for row in alternate[: self._last_used(alternate)]]
        return lines

    @property
    def _scrolled(self) -> int:
        """The number of the main screen's first row, counted from the first line of the stream."""
        return self._history_start + len(self._history)

    def _take(self, end: int) -> list[str]:
        scrolled = self._scrolled
        lines = self._history[self._taken - self._history_start:] if self._taken < scrolled else []
        self._history_start, self._history = scrolled, []
        first_row = max(self._taken - scrolled, 0)
        main = self._main
        lines += [_render(main[row]) if row < len(main) else "" for row in range(first_row, end - scrolled)]
        self._taken = max(self._taken, end)
        return lines

    @staticmethod
    def _last_used(screen: list[Row]) -> int:
        """One past the last row with something visible in it."""
        for index in range(len(screen) - 1, -1, -1):
            if _render(screen[index]):
                return index + 1
        return 0

    # -- writing ---------------------------------------------------------------------------

    def feed(self, text: str) -> None:
        text = _NO_OP_ESCAPES.sub("", text)
        for match in _tokens(self.width).finditer(text):
            kind = match.lastindex
            if kind == _PLAIN_LINES:
                self._print_plain_lines(match.group(_PLAIN_LINES).split("\r\n")[:-1])
            elif kind == _PRINTABLE:
                printable = match.group(_PRINTABLE)
                if printable.isascii():
                    self._print_narrow(printable)
                else:
                    self._print(printable)
            elif kind == _CRLF:
                self._col = 0
                self._linefeed()
            elif kind == _CSI_FINAL:
                if not match.group(5):  # intermediates (a cursor style, say): nothing for the text
                    self._csi(match.group(4), match.group(_CSI_FINAL))
            elif kind == _ESCAPE:
                self._escape(match.group(_ESCAPE))
            else:
                self._control(match.group(_CONTROL))

    def _print_plain_lines(self, lines: list[str]) -> None:
        """Lines of ASCII text that fit the width, each ended by CR LF.

        Printed from the start of an empty row with nothing below it on the main screen, they
        fill the rows in order and push the rows above into the history: that is done in bulk.
        Anywhere else they are printed one by one.
        """
        main = self._main
        index = 0
        while index < len(lines) and not (
            self._col == 0 and self._alternate is None and self._top == 0 and self._bottom == self.height - 1
            and self._autowrap and len(main) <= self._row + 1 and (self._row >= len(main) or not main[self._row])
        ):
            self._print_narrow(lines[index])
            self._col = 0
            self._linefeed()
            index += 1
        if index == len(lines):
            return
        lines = lines[index:]
        del main[self._row:]
        main.extend([] for _ in range(self._row - len(main)))
        overflow = len(main) + len(lines) + 1 - self.height
        if overflow > 0:
            from_screen = min(overflow, len(main))
            self._history += [_render(row) for row in main[:from_screen]]
            del main[:from_screen]
            self._history += lines[: overflow - from_screen]
            lines = lines[overflow - from_screen:]
        main.extend(lines)
        self._row = len(main)

    @property
    def _screen(self) -> list[Row]:
        return self._main if self._alternate is None else self._alternate

    def _current_row(self) -> list[str]:
        screen = self._screen
        while len(screen) <= self._row:
            screen.append([])
        row = screen[self._row]
        if isinstance(row, str):
            row = screen[self._row] = list(row)
        return row

    def _print(self, text: str) -> None:
        chars = set(text)
        narrow = self._narrow
        if not chars <= narrow:
            widths = self._widths
            for char in chars - narrow:
                if char not in widths:
                    widths[char] = _cell_width(char)
                    if widths[char] == 1:
                        narrow.add(char)
            if not chars <= narrow:
                for char in text:
                    width = widths.get(char, 1)
                    if width == 0:
                        self._combine(char)
                    else:
                        self._put(char, width)
                return
        self._print_narrow(text)  # box drawing, accented letters: one cell each

    def _print_narrow(self, text: str) -> None:
        width = self.width
        if not self._autowrap:
            # Past the last column, every character lands on it: the last one stays.
            col = min(self._col, width - 1)
            if len(text) > width - col:
                text = text[: width - col - 1] + text[-1]
            self._store(self._current_row(), col, text)
            self._col = col + len(text)
            return
        while text:
            if self._col >= width:
                self._col = 0
                self._linefeed()
            col = self._col
            piece, text = text[: width - col], text[width - col:]
            self._store(self._current_row(), col, piece)
            self._col = col + len(piece)

    def _put(self, char: str, cells: int) -> None:
        if cells > self.width:
            return  # a wide character on a one-column terminal: nowhere to show it
        if self._col + cells > self.width:
            if not self._autowrap:
                self._col = self.width - cells
            else:
                self._col = 0
                self._linefeed()
        col = self._col
        self._store(self._current_row(), col, char if cells == 1 else [char, _WIDE_RIGHT])
        self._col = col + cells

    def _combine(self, mark: str) -> None:
        """A combining mark or joiner goes with the character before it."""
        row = self._current_row()
        col = min(self._col, len(row)) - 1
        while col > 0 and row[col] == _WIDE_RIGHT:
            col -= 1
        if col >= 0:
            row[col] += mark

    @staticmethod
    def _store(row: list[str], col: int, cells: str | list[str]) -> None:
        """Write ``cells`` from ``col`` on; half a wide character left behind becomes blank."""
        length = len(row)
        if col == length:
            row.extend(cells)
            return
        end = col + len(cells)
        if col > length:
            row.extend(_BLANK * (col - length))
        elif col < length and row[col] == _WIDE_RIGHT and col:
            row[col - 1] = _BLANK
        row[col:end] = cells
        if end < len(row) and row[end] == _WIDE_RIGHT:
            row[end] = _BLANK

    def _linefeed(self) -> None:
        if self._row == self._bottom:
            screen = self._main
            if self._alternate is None and self._top == 0 and len(screen) == self._bottom + 1:
                self._history.append(_render(screen.pop(0)))  # the usual scroll, made short
                screen.append([])
            else:
                self._scroll_up(1)
        elif self._row < self.height - 1:
            self._row += 1

    def _scroll_up(self, count: int) -> None:
        """Rows leave the scrolling region at its top: on the main screen, into the history.

        Whatever the region, as tmux does: a program that scrolls a region under a status line
        scrolls its output through it.
        """
        screen, top, bottom = self._screen, self._top, self._bottom
        while len(screen) <= bottom:
            screen.append([])
        to_history = self._alternate is None
        for _ in range(min(count, bottom - top + 1)):
            gone = screen.pop(top)
            screen.insert(bottom, [])
            if to_history:
                self._history.append(_render(gone))

    def _scroll_down(self, count: int) -> None:
        screen, top, bottom = self._screen, self._top, self._bottom
        while len(screen) <= bottom:
            screen.append([])
        for _ in range(min(count, bottom - top + 1)):
            del screen[bottom]
            screen.insert(top, [])

    def _control(self, char: str) -> None:
        if char == "\r":
            self._col = 0
        elif char in "\n\x0b\x0c":
            self._linefeed()
        elif char == "\b" and self._col:
            self._col -= 1  # from just past the last column, onto it
        elif char == "\t":
            self._col = min((self._col // _TAB_STOP + 1) * _TAB_STOP, self.width - 1)

    def _escape(self, sequence: str) -> None:
        if sequence == "7":
            self._saved_cursor = (self._row, self._col)
        elif sequence == "8":
            self._row, self._col = self._saved_cursor
        elif sequence == "D":
            self._linefeed()
        elif sequence == "E":
            self._col = 0
            self._linefeed()
        elif sequence == "M":
            if self._row == self._top:
                self._scroll_down(1)
            elif self._row:
                self._row -= 1
        elif sequence == "c":
            self._reset()

    def _csi(self, params: str, final: str) -> None:
        if params[:1] in ("?", ">", "<", "="):
            if params[:1] == "?" and final in "hl":
                self._set_modes(params, final == "h")
            return
        handler = self._CSI_HANDLERS.get(final)
        if handler is not None:
            handler(self, params)

    def _set_modes(self, params: str, enable: bool) -> None:
        for mode in params[1:].split(";"):
            if mode == "7":
                self._autowrap = enable
            elif "?" + mode in _ALTERNATE_MODES:
                if enable:
                    self._enter_alternate(save_cursor=mode == "1049")
                else:
                    self._leave_alternate(restore_cursor=mode == "1049")

    def _enter_alternate(self, save_cursor: bool) -> None:
        if self._alternate is not None:
            return
        self._saved_main_cursor = (self._row, self._col)
        self._alternate = []
        if not save_cursor:
            self._row, self._col = self._saved_main_cursor

    def _leave_alternate(self, restore_cursor: bool) -> None:
        if self._alternate is None:
            return
        self._alternate = None
        if restore_cursor:
            self._row, self._col = self._saved_main_cursor

    # -- CSI sequences, by final byte ------------------------------------------------------

    def _move_to(self, row: int, col: int) -> None:
        self._row = max(0, min(row, self.height - 1))
        self._col = max(0, min(col, self.width - 1))

    def _cursor_up(self, params: str) -> None:
        top = self._top if self._row >= self._top else 0
        self._row = max(self._row - _numbers(params)[0], top)
        self._col = min(self._col, self.width - 1)

    def _cursor_down(self, params: str) -> None:
        bottom = self._bottom if self._row <= self._bottom else self.height - 1
        self._row = min(self._row + _numbers(params)[0], bottom)
        self._col = min(self._col, self.width - 1)

    def _cursor_forward(self, params: str) -> None:
        self._col = min(self._col + _numbers(params)[0], self.width - 1)

    def _cursor_back(self, params: str) -> None:
        self._col = max(self._col - _numbers(params)[0], 0)

    def _next_line(self, params: str) -> None:
        self._cursor_down(params)
        self._col = 0

    def _previous_line(self, params: str) -> None:
        self._cursor_up(params)
        self._col = 0

    def _column(self, params: str) -> None:
        self._move_to(self._row, _numbers(params)[0] - 1)

    def _line(self, params: str) -> None:
        self._move_to(_numbers(params)[0] - 1, min(self._col, self.width - 1))

    def _position(self, params: str) -> None:
        numbers = [*_numbers(params), 1]
        self._move_to(numbers[0] - 1, numbers[1] - 1)

    def _erase_in_line(self, params: str) -> None:
        mode = _numbers(params, default=0)[0]
        row = self._current_row()
        col = min(self._col, self.width - 1)
        if mode == 0:
            del row[self._col:]  # just past the last column (a wrap pending), nothing is erased
        elif mode == 1:
            self._store(row, 0, _BLANK * min(col + 1, len(row)))
        elif mode == 2:
            row.clear()

    def _erase_in_display(self, params: str) -> None:
        mode = _numbers(params, default=0)[0]
        screen = self._screen
        if mode == 0:
            self._erase_in_line("0")
            del screen[self._row + 1:]
        elif mode == 1:
            self._erase_in_line("1")
            screen[: self._row] = [[] for _ in screen[: self._row]]
        elif mode == 2:
            self._clear_screen()

    def _clear_screen(self) -> None:
        if self._alternate is not None:
            self._alternate.clear()
            return
        # Into the history first (tmux's scroll-on-clear); at least the rows already handed out,
        # so that a line taken is never taken again.
        count = max(self._last_used(self._main), self._taken - self._scrolled)
        self._history += [_render(row) for row in self._main[:count]]
        self._history += [""] * (count - min(count, len(self._main)))
        self._main.clear()

    def _erase_characters(self, params: str) -> None:
        row = self._current_row()
        col = min(self._col, self.width - 1)
        count = min(_numbers(params)[0], len(row) - col)
        if count > 0:
            self._store(row, col, _BLANK * count)

    def _delete_characters(self, params: str) -> None:
        row = self._current_row()
        col = min(self._col, self.width - 1)
        self._store(row, col, "")  # half a wide character at the cursor goes blank
        end = col + _numbers(params)[0]
        if end < len(row) and row[end] == _WIDE_RIGHT:
            row[end] = _BLANK
        del row[col:end]

    def _insert_characters(self, params: str) -> None:
        row = self._current_row()
        col = min(self._col, self.width - 1)
        if col < len(row):
            self._store(row, col, "")
            row[col:col] = _BLANK * _numbers(params)[0]
            if len(row) > self.width and row[self.width] == _WIDE_RIGHT:
                row[self.width - 1] = _BLANK  # a wide character pushed half off the edge
            del row[self.width:]

    def _insert_lines(self, params: str) -> None:
        if self._top <= self._row <= self._bottom:
            saved_top, self._top = self._top, self._row
            self._scroll_down(_numbers(params)[0])
            self._top = saved_top
            self._col = 0

    def _delete_lines(self, params: str) -> None:
        if self._top <= self._row <= self._bottom:
            saved_top, self._top = self._top, self._row
            screen = self._screen
            while len(screen) <= self._bottom:
                screen.append([])
            for _ in range(min(_numbers(params)[0], self._bottom - self._row + 1)):
                del screen[self._row]
                screen.insert(self._bottom, [])
            self._top = saved_top
            self._col = 0

    def _scroll_up_csi(self, params: str) -> None:
        self._scroll_up(_numbers(params)[0])

    def _scroll_down_csi(self, params: str) -> None:
        self._scroll_down(_numbers(params)[0])

    def _set_region(self, params: str) -> None:
        numbers = [int(field) if field.isdigit() else 0 for field in params.split(";")] + [0, 0]
        top = (numbers[0] or 1) - 1
        bottom = (numbers[1] or self.height) - 1
        bottom = min(bottom, self.height - 1)
        if top < bottom:
            self._top, self._bottom = top, bottom
            self._row, self._col = 0, 0

    def _save_cursor(self, params: str) -> None:
        if not params:
            self._saved_cursor = (self._row, self._col)

    def _restore_cursor(self, params: str) -> None:
        if not params:
            self._row, self._col = self._saved_cursor

    def _reset(self) -> None:
        self._leave_alternate(restore_cursor=False)
        self._clear_screen()
        self._row = self._col = 0
        self._top, self._bottom = 0, self.height - 1
        self._autowrap = True

    _CSI_HANDLERS: ClassVar[dict[str, Callable[[TerminalStream, str], None]]] = {
        "A": _cursor_up, "B": _cursor_down, "C": _cursor_forward, "D": _cursor_back,
        "E": _next_line, "F": _previous_line, "G": _column, "`": _column, "a": _cursor_forward,
        "d": _line, "e": _cursor_down, "H": _position, "f": _position,
        "K": _erase_in_line, "J": _erase_in_display, "X": _erase_characters,
        "P": _delete_characters, "@": _insert_characters, "L": _insert_lines, "M": _delete_lines,
        "S": _scroll_up_csi, "T": _scroll_down_csi, "r": _set_region,
        "s": _save_cursor, "u": _restore_cursor,
    }


def plain_lines(text: str) -> list[str]:
    """The lines a terminal shows for ``text``: its history, then its screen down to the last line with text."""
    stream = TerminalStream()
    stream.feed(text)
    return stream.take_all()
