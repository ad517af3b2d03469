"""What a user lacking a program is told to run: the helper's hint for its own host, and the
list install.sh prints where it cannot install system packages itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mngr.remote_helper import install_hint

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("os_release", "expected"), [
    ('ID=debian\nVERSION_ID="12"\n', "apt-get install tmux"),
    ('ID=ubuntu\nID_LIKE=debian\n', "apt-get install tmux"),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', "apt-get install tmux"),
    ('ID=fedora\n', "dnf install tmux"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "dnf install tmux"),
    ('ID=arch\n', "pacman -S tmux"),
    ('ID=alpine\n', "apk add tmux"),
    ('ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n', "zypper install tmux"),
])
def test_the_hint_is_the_hosts_own_package_manager(tmp_path: Path, os_release: str, expected: str) -> None:
    path = tmp_path / "os-release"
    path.write_text(os_release)
    assert install_hint.install_command("tmux", str(path), "linux", is_root=True) == expected
    assert install_hint.install_command("tmux", str(path), "linux", is_root=False) == "sudo " + expected


def test_macos_is_told_homebrew_and_an_unknown_system_the_common_commands(tmp_path: Path) -> None:
    assert install_hint.install_command("tmux", str(tmp_path / "none"), "darwin", is_root=False) == "brew install tmux"
    unknown = install_hint.install_command("tmux", str(tmp_path / "none"), "linux", is_root=False)
    assert unknown == ("sudo apt-get install tmux or sudo dnf install tmux or sudo pacman -S tmux or "
                       "sudo apk add tmux or brew install tmux")


def test_the_missing_program_message_is_one_line() -> None:
    message = install_hint.missing_program("tmux")
    assert message.startswith("tmux is not installed (not found on PATH); install it with: ")
    assert "\n" not in message


def _bare_path(tmp_path: Path, *programs: str) -> str:
    """A PATH holding only ``programs`` (and what the script itself runs)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for program in ("bash", "id", *programs):
        found = shutil.which(program)
        assert found, program
        (directory / program).symlink_to(found)
    return str(directory)


def test_system_packages_lists_each_systems_command_for_what_is_missing(tmp_path: Path) -> None:
    result = subprocess.run([str(ROOT / "scripts" / "system_packages.sh")], capture_output=True, text=True,
                            env={"PATH": _bare_path(tmp_path, "ssh")})
    assert result.returncode == 1
    sudo = "" if os.getuid() == 0 else "sudo "
    assert result.stdout.splitlines() == [
        "mngr needs these programs, which are not installed here: tmux",
        "install them with:",
        f"  Debian, Ubuntu:    {sudo}apt-get install tmux",
        f"  Fedora:            {sudo}dnf install tmux",
        f"  Arch:              {sudo}pacman -S tmux",
        f"  Alpine:            {sudo}apk add tmux",
        "  macOS (Homebrew):  brew install tmux",
    ]


def test_system_packages_names_each_package_once_and_skips_what_a_system_ships(tmp_path: Path) -> None:
    result = subprocess.run([str(ROOT / "scripts" / "system_packages.sh")], capture_output=True, text=True,
                            env={"PATH": _bare_path(tmp_path)})
    lines = result.stdout.splitlines()
    assert lines[0] == "mngr needs these programs, which are not installed here: tmux ssh"
    assert lines[4].endswith("pacman -S tmux openssh")
    assert lines[6] == "  macOS (Homebrew):  brew install tmux"  # macOS has ssh


def test_system_packages_is_silent_when_nothing_is_missing(tmp_path: Path) -> None:
    result = subprocess.run([str(ROOT / "scripts" / "system_packages.sh")], capture_output=True, text=True,
                            env={"PATH": _bare_path(tmp_path, "ssh", "tmux")})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
