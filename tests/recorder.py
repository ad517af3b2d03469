"""A real agent-like program for delivery checks: it puts its terminal in raw mode (as
coding-agent TUIs do) and appends every byte it reads to the file named by its argument."""

RECORDER = """
import os, sys, tty
tty.setraw(0)
with open(sys.argv[1], "ab") as out:
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        out.write(data)
        out.flush()
"""
