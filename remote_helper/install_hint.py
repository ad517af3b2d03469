"""How to install a program this host lacks, in the words of its own package manager.

A missing program is reported by the host, which knows its system: the user gets the one
command that installs it there (or, on a system not recognised, the common ones).
"""

import os
import sys

# package manager command, by /etc/os-release ID (or an ID_LIKE entry)
_COMMANDS = {
    "debian": "apt-get install",
    "ubuntu": "apt-get install",
    "fedora": "dnf install",
    "rhel": "dnf install",
    "centos": "dnf install",
    "arch": "pacman -S",
    "alpine": "apk add",
    "opensuse": "zypper install",
    "suse": "zypper install",
}
_FALLBACK = ("apt-get install", "dnf install", "pacman -S", "apk add", "brew install")


def _os_release_ids(path):
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    ids = []
    for line in lines:
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids += value.strip().strip("\"'").lower().split()
    return ids


def install_command(package, os_release="/etc/os-release", platform=None, is_root=None):
    """The command that installs ``package`` here, or the common ones joined by " or "."""
    platform = sys.platform if platform is None else platform
    if platform == "darwin":
        return "brew install " + package
    if is_root is None:
        is_root = os.getuid() == 0
    sudo = "" if is_root else "sudo "
    for system in _os_release_ids(os_release):
        command = _COMMANDS.get(system) or _COMMANDS.get(system.split("-")[0])
        if command:
            return sudo + command + " " + package
    return " or ".join(
        ("" if command.startswith("brew") else sudo) + command + " " + package for command in _FALLBACK
    )


def missing_program(program, package=None):
    """One line: ``program`` is not installed here, and how to install it."""
    return "%s is not installed (not found on PATH); install it with: %s" % (
        program, install_command(package or program))
