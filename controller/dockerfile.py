"""What ``mngr bootstrap`` writes: a project's toolchains, found from its files, and a Dockerfile for them.

    toolchains = detect(Path("."))          # python, node, go, rust: each with the files that showed it
    text = render(toolchains, "debian:bookworm-slim")
    describe(toolchains)                    # one line: "python (pyproject.toml, uv.lock; uv), node (...)"

The Dockerfile installs what mngr needs on every host and each toolchain, from Debian
packages where Debian has them (a package manager Debian lacks comes from PyPI or npm).
It copies nothing from the project: mngr brings the work dir into the container itself.
It uses nothing the classic builder lacks (no ``RUN --mount``, no heredocs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_IMAGE = "debian:bookworm-slim"

# What mngr needs on any host, and why (the comment above the install says the same).
HOST_PACKAGES = ("ca-certificates", "git", "procps", "python3", "tmux")

# Files that show a toolchain, in the project or one folder down (a frontend in web/).
_MARKERS: dict[str, tuple[str, ...]] = {
    "python": ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "Pipfile", "uv.lock",
               "poetry.lock"),
    "node": ("package.json",),
    "go": ("go.mod", "go.work"),
    "rust": ("Cargo.toml",),
}
# Lock files that name a package manager other than the toolchain's own (pip, npm, go, cargo).
_MANAGERS: dict[str, tuple[tuple[str, str], ...]] = {
    "python": (("uv.lock", "uv"), ("poetry.lock", "poetry")),
    "node": (("yarn.lock", "yarn"), ("pnpm-lock.yaml", "pnpm")),
}
_EXTRA_FILES: dict[str, tuple[str, ...]] = {
    "node": ("package-lock.json", "yarn.lock", "pnpm-lock.yaml"),
}
_PYTHON_REQUIREMENTS = re.compile(r"requirements[-_.\w]*\.txt")
# Folders one level down that hold someone else's files, not the project's own.
_SKIPPED_FOLDERS = frozenset({"node_modules", "venv", "env", "__pycache__", "target", "vendor", "dist",
                              "build", "site-packages"})
_ORDER = ("python", "node", "go", "rust")
_TOOLCHAIN_PACKAGES: dict[str, tuple[str, ...]] = {
    "python": ("python3-pip", "python3-venv"),
    "node": ("nodejs", "npm"),
    "go": ("golang-go",),
    "rust": ("cargo", "rustc"),
}
_TOOLCHAIN_WHY: dict[str, str] = {
    "python": "pip and venv, for the project's Python packages (Debian bookworm: Python 3.11)",
    "node": "Node.js and npm (Debian bookworm: Node 18)",
    "go": "the Go toolchain (Debian bookworm: Go 1.19)",
    "rust": "cargo and rustc (Debian bookworm: Rust 1.63)",
}
_VERSION = re.compile(r"\d+(\.\d+){0,2}")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")
# A pnpm major that runs on bookworm's Node 18 (pnpm 9 needs 18.12), when package.json pins none.
DEFAULT_PNPM = "pnpm@9"


@dataclass(frozen=True)
class Toolchain:
    """A toolchain the project uses: ``files`` showed it; ``tools`` are its extra package managers.

    A tool is a name, or ``name@version`` when the project pins one (pnpm, from package.json's
    ``packageManager``).
    """

    name: str
    files: tuple[str, ...]
    tools: tuple[str, ...] = ()


def detect(root: Path) -> list[Toolchain]:
    """The toolchains of the project at ``root``, from its files and those of its direct subfolders.

    Hidden folders and folders of installed or built things (node_modules, venv, target, ...)
    are not looked in. The order is always python, node, go, rust.
    """
    folders = [root, *sorted(_subfolders(root))]
    found: dict[str, list[str]] = {}
    tools: dict[str, list[str]] = {}
    for folder in folders:
        names = _file_names(folder)
        prefix = "" if folder == root else f"{folder.name}/"
        for toolchain, markers in _MARKERS.items():
            shown = [name for name in markers if name in names]
            if toolchain == "python":
                shown += sorted(name for name in names if _PYTHON_REQUIREMENTS.fullmatch(name)
                                and name != "requirements.txt")
            if not shown:
                continue
            shown += [name for name in _EXTRA_FILES.get(toolchain, ()) if name in names]
            found.setdefault(toolchain, []).extend(prefix + name for name in shown)
            for lock_file, tool in _MANAGERS.get(toolchain, ()):
                if lock_file in names:
                    if tool == "pnpm":
                        tool = _pinned_pnpm(folder / "package.json") or tool
                    tools.setdefault(toolchain, []).append(tool)
    return [
        Toolchain(name, tuple(dict.fromkeys(found[name])), tuple(dict.fromkeys(tools.get(name, []))))
        for name in _ORDER if name in found
    ]


def describe(toolchains: Sequence[Toolchain]) -> str:
    """One line: what was found and from which files, or that nothing was."""
    if not toolchains:
        return "none (no Python, Node, Go or Rust project files)"
    parts = []
    for toolchain in toolchains:
        tools = f"; {', '.join(toolchain.tools)}" if toolchain.tools else ""
        parts.append(f"{toolchain.name} ({_files(toolchain)}{tools})")
    return ", ".join(parts)


def valid_image(image: str) -> bool:
    """Whether ``image`` can stand in a FROM line as one image reference (and nothing more)."""
    return _IMAGE.fullmatch(image) is not None


def render(toolchains: Sequence[Toolchain], base_image: str = DEFAULT_BASE_IMAGE,
           dockerfile: str = "Dockerfile") -> str:
    """The Dockerfile's text: plain, commented, buildable by the classic builder.

    ``dockerfile`` is where it will be, as the comment on how to use it names it.
    """
    if not valid_image(base_image):
        raise ValueError(f"not an image reference: {base_image!r}")
    if not dockerfile.isprintable():
        raise ValueError(f"not a printable path: {dockerfile!r}")
    names = [toolchain.name for toolchain in toolchains]
    tools = [tool for toolchain in toolchains for tool in toolchain.tools]
    lines = [
        "# An mngr host for this project, written by `mngr bootstrap`: edit it as you like.",
        *_detected(toolchains),
        "# Nothing is copied from the project: mngr brings the work dir into the container itself.",
        f'# Use it with: mngr create --in docker --build-arg "--dockerfile {dockerfile}"',
        "",
        f"FROM {base_image}",
        "",
        "# apt-get asks no questions during the build (ARG: not kept in the image).",
        "ARG DEBIAN_FRONTEND=noninteractive",
        "# tmux draws UTF-8 only under a UTF-8 locale; C.UTF-8 is built into glibc.",
        "ENV LANG=C.UTF-8",
        "",
        "# What mngr needs on every host: python3 runs its helper, tmux runs the agents, git",
        "# carries work in and out, procps gives ps and pgrep, ca-certificates lets https work.",
    ]
    for name in names:
        lines.append(f"# {name}: {_TOOLCHAIN_WHY[name]}.")
    uses_yarn = any(tool.split("@")[0] == "yarn" for tool in tools)
    if uses_yarn:
        lines.append("# yarnpkg: yarn 1, which hands over to a yarn release pinned in .yarnrc.yml.")
    if names:
        lines.append("# Newer than bookworm's? Rerun mngr bootstrap --from an image that has them.")
    packages = [*HOST_PACKAGES]
    for name in names:
        packages += _TOOLCHAIN_PACKAGES[name]
    if uses_yarn:
        packages.append("yarnpkg")
    lines += [
        "RUN apt-get update \\",
        " && apt-get install -y --no-install-recommends \\",
        *_wrapped(packages, indent="      ", width=88),
        " && rm -rf /var/lib/apt/lists/*",
    ]
    for tool in tools:
        name, _, version = tool.partition("@")
        lines.append("")
        if name in ("uv", "poetry"):
            lock = "uv.lock" if name == "uv" else "poetry.lock"
            lines += [
                f"# {lock}: the project is managed with {name}, which Debian does not package: from PyPI,",
                "# into a venv of its own (Debian's Python refuses pip installs outside one).",
                f"RUN python3 -m venv /opt/{name} \\",
                f" && /opt/{name}/bin/pip install --no-cache-dir {name} \\",
                f" && ln -s /opt/{name}/bin/{name} /usr/local/bin/{name}",
            ]
        elif name == "yarn":
            lines += [
                "# yarn.lock: Debian calls yarn yarnpkg; `yarn` is what people and scripts type.",
                "RUN ln -s /usr/bin/yarnpkg /usr/local/bin/yarn",
            ]
        elif name == "pnpm":
            why = f"package.json pins pnpm {version}" if version else f"{DEFAULT_PNPM} runs on bookworm's Node 18"
            lines += [
                f"# pnpm-lock.yaml: pnpm, which Debian does not package, from npm ({why}).",
                f"RUN npm install -g {tool if version else DEFAULT_PNPM}",
            ]
    lines += [
        "",
        "# Add what else your project needs here, for example:",
        "# RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \\",
        "#  && rm -rf /var/lib/apt/lists/*",
        "",
    ]
    return "\n".join(lines)


def _files(toolchain: Toolchain) -> str:
    return ", ".join(toolchain.files[:4]) + (", ..." if len(toolchain.files) > 4 else "")


def _detected(toolchains: Sequence[Toolchain]) -> list[str]:
    """The Dockerfile's comment on what was found: a line per toolchain."""
    if not toolchains:
        return [f"# Detected: {describe(toolchains)}."]
    lines = ["# Detected:"]
    for toolchain in toolchains:
        tools = f" ({', '.join(toolchain.tools)})" if toolchain.tools else ""
        lines.append(f"#   {toolchain.name}: {_files(toolchain)}{tools}")
    return lines


def _subfolders(root: Path) -> list[Path]:
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    # A name with a newline in it would end the Dockerfile's comment that names it.
    return [
        entry for entry in entries
        if not entry.name.startswith(".") and entry.name not in _SKIPPED_FOLDERS and entry.name.isprintable()
        and entry.is_dir() and not entry.is_symlink()
    ]


def _file_names(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in folder.iterdir() if entry.is_file()}
    except OSError:
        return set()


def _pinned_pnpm(package_json: Path) -> str | None:
    """``pnpm@X.Y.Z`` from package.json's ``packageManager``, when it pins pnpm to a plain version."""
    try:
        manifest = json.loads(package_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = manifest.get("packageManager") if isinstance(manifest, dict) else None
    if not isinstance(value, str) or not value.startswith("pnpm@"):
        return None
    version = value.removeprefix("pnpm@").split("+")[0]  # "+sha512.<hash>" may follow
    # Only digits and dots reach the RUN line: package.json is not trusted to write shell.
    return f"pnpm@{version}" if _VERSION.fullmatch(version) else None


def _wrapped(words: Sequence[str], indent: str, width: int) -> list[str]:
    """``words`` on as few lines as fit in ``width``, each line ending in `` \\`` (more follows)."""
    lines = [indent]
    for word in words:
        if lines[-1] != indent and len(lines[-1]) + len(word) + 3 > width:
            lines.append(indent)
        lines[-1] = f"{lines[-1]} {word}" if lines[-1] != indent else f"{indent}{word}"
    return [f"{line} \\" for line in lines]
