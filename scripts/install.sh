#!/usr/bin/env bash
# Install mngr into ./.venv, and on Debian or Ubuntu (apt) the system packages it needs too;
# elsewhere those are listed, with the command that installs them (scripts/system_packages.sh).
#   ./scripts/install.sh          mngr itself (tmux and the OpenSSH client included)
#   ./scripts/install.sh --test   also what the test suite needs (sshd for its SSH test hosts,
#                                 git for the push, pull and --source tests, procps for pgrep,
#                                 docker.io and debootstrap for the Docker tests' engine and image,
#                                 cron for the crontab the schedule tests install into,
#                                 unison for the peer bench/pair.py measures mngr pair against,
#                                 chromium and chromium-driver for the mngr web tests' browser,
#                                 and the real claude and codex CLIs, pinned, from npm into
#                                 .venv/agent-clis: the tests drive them against a local
#                                 stand-in for the model APIs)
#   PYTHON=python3.12 ./scripts/install.sh   to pick the interpreter (3.11 or newer)
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
system_packages=(tmux openssh-client)
if [[ "${1:-}" == "--test" ]]; then
    system_packages+=(openssh-server git procps debootstrap cron unison rsync)  # rsync: bench/'s peer
    system_packages+=(chromium chromium-driver)  # the headless browser the mngr web tests drive
    command -v npm >/dev/null 2>&1 || system_packages+=(nodejs npm)
    # Any Docker engine will do; docker.io would conflict with an installed docker-ce, whose
    # dockerd is in /usr/bin (docker.io's is in /usr/sbin, often not on a user's PATH).
    [[ -x /usr/bin/dockerd || -x /usr/sbin/dockerd ]] || system_packages+=(docker.io)
fi
# Debian's own python3 needs python3-venv for `python3 -m venv`; pyenv and others ship it.
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || system_packages+=(python3-venv)
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
if command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 \
    && { [[ -z "$sudo" ]] || command -v sudo >/dev/null 2>&1; }; then
    missing=()
    for package in "${system_packages[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "installing system packages: ${missing[*]}" >&2
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
else
    # No apt (or no way to become root): mngr is installed all the same, and what it needs
    # from the system is listed with the command that installs it here.
    scripts/system_packages.sh "${1:-}" >&2 || true
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "mngr needs Python 3.11 or newer; $python is $("$python" --version 2>&1). Set PYTHON=..." >&2
    exit 1
fi
if [[ ! -x .venv/bin/python ]] && ! "$python" -m venv .venv; then
    echo "$python cannot make a virtual environment (on Debian or Ubuntu: apt-get install python3-venv)" >&2
    exit 1
fi
purelib=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# A venv made by an older mngr holds it under the distribution name mngr: one owner of bin/mngr.
if compgen -G "$purelib/mngr-[0-9]*.dist-info" >/dev/null; then
    .venv/bin/python -m pip uninstall --quiet --yes mngr
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# setuptools' editable install finds mngr's packages through an import hook that loads
# pathlib, urllib and more at every start of Python (about 10 ms of each mngr command).
# mngr's packages are plain directories of this checkout, so a path entry to a link named
# mngr does the same for nothing; the .pth file pip wrote is pointed there instead.
mkdir -p .venv/mngr-path
ln -sfn "$(pwd)" .venv/mngr-path/mngr
for pth in "$purelib"/__editable__.mngr_agents-*.pth; do
    [[ -e "$pth" ]] && echo "$(pwd)/.venv/mngr-path" >"$pth"
done
# pip's console script imports re (~3 ms) only to strip a Windows suffix from argv[0];
# a push or pull run by the resident mngr costs little more than Python's start, so the
# script is written without it (the same entry point: pyproject.toml's [project.scripts]).
cat >.venv/bin/mngr <<EOF
#!$(pwd)/.venv/bin/python
import sys
from mngr.controller.cli.entry import main
if __name__ == "__main__":
    sys.exit(main())
EOF
if [[ "${1:-}" == "--test" ]]; then
    # Versions the tests were written against: a new release can change a dialog or a key.
    agent_clis=(@anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0)
    if ! .venv/agent-clis/node_modules/.bin/claude --version 2>/dev/null | grep -q "^2.1.197 " \
        || ! .venv/agent-clis/node_modules/.bin/codex --version 2>/dev/null | grep -q " 0.171.0$"; then
        echo "installing agent CLIs for the tests: ${agent_clis[*]}" >&2
        mkdir -p .venv/agent-clis
        npm install --silent --no-audit --no-fund --prefix .venv/agent-clis "${agent_clis[@]}" >/dev/null
    fi
fi
echo "mngr installed: $(pwd)/.venv/bin/mngr" >&2
