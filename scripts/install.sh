#!/usr/bin/env bash
# Install mngr and everything it needs into ./.venv, on a fresh Debian or Ubuntu machine.
#   ./scripts/install.sh          mngr itself (tmux and the OpenSSH client included)
#   ./scripts/install.sh --test   also what the test suite needs (sshd for its SSH test hosts,
#                                 git for the push, pull and --source tests, procps for pgrep,
#                                 docker.io and debootstrap for the Docker tests' engine and image,
#                                 cron for the crontab the schedule tests install into,
#                                 unison for the peer bench/pair.py measures mngr pair against,
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
    command -v npm >/dev/null 2>&1 || system_packages+=(nodejs npm)
    # Any Docker engine will do; docker.io would conflict with an installed docker-ce, whose
    # dockerd is in /usr/bin (docker.io's is in /usr/sbin, often not on a user's PATH).
    [[ -x /usr/bin/dockerd || -x /usr/sbin/dockerd ]] || system_packages+=(docker.io)
fi
# Debian's own python3 needs python3-venv for `python3 -m venv`; pyenv and others ship it.
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || system_packages+=(python3-venv)
missing=()
for package in "${system_packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "installing system packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "mngr needs Python 3.11 or newer; $python is $("$python" --version 2>&1). Set PYTHON=..." >&2
    exit 1
fi
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# setuptools' editable install finds mngr's packages through an import hook that loads
# pathlib, urllib and more at every start of Python (about 10 ms of each mngr command).
# mngr's packages are plain directories of this checkout, so a path entry to a link named
# mngr does the same for nothing; the .pth file pip wrote is pointed there instead.
mkdir -p .venv/mngr-path
ln -sfn "$(pwd)" .venv/mngr-path/mngr
purelib=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for pth in "$purelib"/__editable__.mngr-*.pth; do
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
