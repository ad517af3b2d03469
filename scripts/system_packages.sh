#!/usr/bin/env bash
# Name the programs mngr needs that this machine lacks, and the command that installs them on
# common systems. install.sh runs it where it cannot install them itself (no apt, or no root).
#   scripts/system_packages.sh           what mngr needs (tmux, the OpenSSH client)
#   scripts/system_packages.sh --test    also what the test suite needs
# Exit status 0 when nothing is missing, 1 otherwise.
set -euo pipefail

# program: package on Debian/Ubuntu, Fedora, Arch, Alpine, macOS Homebrew ("-": nothing to install)
table=(
    "tmux:tmux:tmux:tmux:tmux:tmux"
    "ssh:openssh-client:openssh-clients:openssh:openssh-client:-"
)
if [[ "${1:-}" == "--test" ]]; then
    table+=(
        "sshd:openssh-server:openssh-server:openssh:openssh-server:-"
        "git:git:git:git:git:git"
        "pgrep:procps:procps-ng:procps-ng:procps:-"
        "rsync:rsync:rsync:rsync:rsync:rsync"
        "unison:unison:unison:unison:unison:unison"
        "crontab:cron:cronie:cronie:cronie:-"
        "dockerd:docker.io:moby-engine:docker:docker:colima"
        "npm:npm:nodejs-npm:npm:npm:node"
        "chromium:chromium:chromium:chromium:chromium:chromium"
        "chromedriver:chromium-driver:chromedriver:chromium:chromium-chromedriver:chromedriver"
    )
fi

systems=("Debian, Ubuntu" "Fedora" "Arch" "Alpine" "macOS (Homebrew)")
commands=("apt-get install" "dnf install" "pacman -S" "apk add" "brew install")
sudo="sudo "
[[ $(id -u) -eq 0 ]] && sudo=""

missing=()
packages=("" "" "" "" "")
for row in "${table[@]}"; do
    IFS=: read -r program debian fedora arch alpine brew <<<"$row"
    # sshd is usually outside a user's PATH
    command -v "$program" >/dev/null 2>&1 || [[ -x "/usr/sbin/$program" ]] && continue
    missing+=("$program")
    names=("$debian" "$fedora" "$arch" "$alpine" "$brew")
    for i in "${!names[@]}"; do
        [[ "${names[$i]}" == "-" ]] && continue
        # one package can provide several programs (openssh on Arch)
        [[ " ${packages[$i]} " == *" ${names[$i]} "* ]] || packages[$i]+=" ${names[$i]}"
    done
done
((${#missing[@]})) || exit 0

echo "mngr needs these programs, which are not installed here: ${missing[*]}"
echo "install them with:"
for i in "${!systems[@]}"; do
    [[ -n "${packages[$i]}" ]] || continue
    prefix="$sudo"
    [[ "${commands[$i]}" == brew* ]] && prefix=""
    printf '  %-18s %s%s%s\n' "${systems[$i]}:" "$prefix" "${commands[$i]}" "${packages[$i]}"
done
exit 1
