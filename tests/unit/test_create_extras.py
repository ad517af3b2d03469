"""The pieces of `mngr create --upload-file`, `--extra-window` and `--reuse` that need no
host: reading the specs, landing files (real files, in-process), and what "matches" means."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mngr.controller import extra_windows, uploads
from mngr.controller.agent_types import BUILTIN_AGENT_TYPES
from mngr.controller.channel.protocol import AgentInfo
from mngr.controller.commands import reuse
from mngr.controller.errors import UsageError
from mngr.remote_helper import files, gc
from mngr.remote_helper import uploads as landing
from mngr.remote_helper.wire import RequestFailed

TYPES = {agent_type.name: agent_type for agent_type in BUILTIN_AGENT_TYPES}


@pytest.mark.parametrize(("spec", "local", "dest"), [
    ("notes.txt", "notes.txt", "notes.txt"),
    ("dir/notes.txt", "dir/notes.txt", "notes.txt"),
    ("notes.txt:conf/n.txt", "notes.txt", "conf/n.txt"),
    ("notes.txt:conf/", "notes.txt", "conf/notes.txt"),
    ("notes.txt:.", "notes.txt", "notes.txt"),
    ("notes.txt:/etc/app/n.txt", "notes.txt", "/etc/app/n.txt"),
    ("notes.txt:~/", "notes.txt", "~/notes.txt"),
    ("notes.txt:~", "notes.txt", "~/notes.txt"),
    ("notes.txt:~/.config/x", "notes.txt", "~/.config/x"),
    ("notes.txt:a/../b", "notes.txt", "b"),
])
def test_upload_specs(spec: str, local: str, dest: str) -> None:
    assert uploads.parse_spec(spec) == (local, dest)


@pytest.mark.parametrize(("spec", "message"), [
    (":x", "no local path"),
    ("a:", "empty DEST"),
    ("a:../x", "leads out of the agent's work dir"),
    ("a:sub/../../x", "leads out of the agent's work dir"),
    ("a:~root/x", "only ~/"),
])
def test_bad_upload_specs(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        uploads.parse_spec(spec)


def test_collect_reads_files_and_directories_with_their_modes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("key").write_bytes(b"secret")
    Path("key").chmod(0o600)
    Path("conf/sub").mkdir(parents=True)
    Path("conf/sub/a.ini").write_bytes(b"a=1")
    Path("conf/run.sh").write_bytes(b"#!/bin/sh\n")
    Path("conf/run.sh").chmod(0o750)
    collected = uploads.collect(["key", "conf:etc/conf"])
    rows = {entry[0]: (entry[1], entry[2]) for entry in collected.entries}
    assert rows == {"key": ("f", 0o600), "etc/conf": ("d", Path("conf").stat().st_mode & 0o7777),
                    "etc/conf/sub": ("d", Path("conf/sub").stat().st_mode & 0o7777),
                    "etc/conf/run.sh": ("f", 0o750), "etc/conf/sub/a.ini": ("f", Path("conf/sub/a.ini").stat().st_mode
                                                                            & 0o7777)}
    blob = bytes(collected.blob)
    data = {entry[0]: blob[entry[4]:entry[4] + entry[5]] for entry in collected.entries if entry[1] == "f"}
    assert data == {"key": b"secret", "etc/conf/run.sh": b"#!/bin/sh\n", "etc/conf/sub/a.ini": b"a=1"}


def test_collect_refuses_what_cannot_travel(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"--upload-file missing\.txt: No such file or directory"):
        uploads.collect(["missing.txt"])
    Path("a").write_text("x")
    with pytest.raises(UsageError, match="both go to same"):
        uploads.collect(["a:same", "a:same"])
    Path("d").mkdir()
    (Path("d") / "link").symlink_to("../a")
    with pytest.raises(UsageError, match="is a symlink"):
        uploads.collect(["d"])


@pytest.mark.parametrize(("spec", "message"), [
    ("web", "expects NAME=CMD"),
    ("=npm start", "empty window name"),
    ("agent=npm start", "the agent's own window"),
    ("1web=npm start", "invalid window name"),
    ("Web=npm start", "invalid window name"),
    ("web=  ", "no command"),
])
def test_bad_extra_windows(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        extra_windows.parse([spec])


def test_extra_windows_keep_their_order_and_refuse_a_name_twice() -> None:
    assert list(extra_windows.parse(["web=npm run dev", "tests=make watch"])) == ["web", "tests"]
    with pytest.raises(UsageError, match="given twice"):
        extra_windows.parse(["web=a", "web=b"])


def _land(tmp_path: Path, monkeypatch, files: dict[str, bytes], overwrite: bool = False) -> landing.Landed:
    monkeypatch.setenv("MNGR_HOST_DIR", str(tmp_path / "host"))
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path / "state"))
    blob = b"".join(files.values())
    entries, offset = [], 0
    for dest, data in files.items():
        entries.append([dest, "f", 0o640, 0, offset, len(data)])
        offset += len(data)
    return landing.land(entries, blob, str(tmp_path / "work"), overwrite)


def test_landing_is_all_or_nothing(tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "there.txt").write_bytes(b"the user's")
    with pytest.raises(RequestFailed, match="a file is there already"):
        _land(tmp_path, monkeypatch, {"new/first.txt": b"1", "there.txt": b"2"})
    assert sorted(os.listdir(work)) == ["there.txt"] and (work / "there.txt").read_bytes() == b"the user's"
    # The same bytes are no conflict: only the mode is set.
    _land(tmp_path, monkeypatch, {"there.txt": b"the user's"}).commit()
    assert (work / "there.txt").stat().st_mode & 0o777 == 0o640
    landed = _land(tmp_path, monkeypatch, {"new/first.txt": b"1", "there.txt": b"2"}, overwrite=True)
    assert (work / "there.txt").read_bytes() == b"2" and (work / "new" / "first.txt").read_bytes() == b"1"
    landed.undo()  # the create failed after all: as it was
    assert sorted(os.listdir(work)) == ["there.txt"] and (work / "there.txt").read_bytes() == b"the user's"


def test_a_file_whose_name_is_as_long_as_names_go_lands(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "work").mkdir()
    longest = "n" * os.pathconf(tmp_path, "PC_NAME_MAX")
    _land(tmp_path, monkeypatch, {longest: b"data"}).commit()
    assert os.listdir(tmp_path / "work") == [longest]


def test_an_upload_cut_short_leaves_only_a_part_file_that_gc_removes(tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    renamed: list[str] = []

    def killed_before_the_rename(source: str, target: str) -> None:
        renamed.append(source)
        raise KeyboardInterrupt  # as far as a test can go towards a kill -9 here

    monkeypatch.setattr(landing.os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        _land(tmp_path, monkeypatch, {"src/config.json": b"{}"})
    monkeypatch.undo()
    (temporary,) = renamed
    assert Path(temporary).parent == work / "src" and Path(temporary).name.startswith(files.PART_PREFIX)
    Path(temporary).write_bytes(b"{")  # what a killed helper would have left there
    listed: dict[str, list] = {}
    files.walk(str(work), "", listed)
    assert sorted(listed) == ["src"]  # a listing (push, pull, pair) leaves it out
    assert list(gc._part_files(str(work), time.time() + 3600, 60)) == [temporary]


def test_landing_refuses_mngrs_own_state(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "host" / "agents").mkdir(parents=True)
    with pytest.raises(RequestFailed, match="mngr's own state"):
        _land(tmp_path, monkeypatch, {str(tmp_path / "host" / "agents" / "x.json"): b"{}"})
    assert os.listdir(tmp_path / "host" / "agents") == []



def test_a_work_dir_around_the_host_dir_opens_nothing_of_it(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    (home / ".mngr" / "agents").mkdir(parents=True)
    (home / ".mngr" / "work" / "job").mkdir(parents=True)
    monkeypatch.setenv("MNGR_HOST_DIR", str(home / ".mngr"))
    monkeypatch.setenv("MNGR_STATE_DIR", str(tmp_path / "state"))
    entry = [".mngr/agents/x.json", "f", 0o600, 0, 0, 2]
    with pytest.raises(RequestFailed, match="mngr's own state"):
        landing.land([entry], b"{}", str(home))
    assert os.listdir(home / ".mngr" / "agents") == []
    # A work dir mngr made in its host dir is the agent's own.
    landing.land([["x.json", "f", 0o600, 0, 0, 2]], b"{}", str(home / ".mngr" / "work" / "job")).commit()
    assert (home / ".mngr" / "work" / "job" / "x.json").read_bytes() == b"{}"


def _info(**fields) -> AgentInfo:
    defaults = dict(id="agent-1", name="job", type="command", state="RUNNING", command="sleep 600",
                    work_dir="/srv/job", created_at="")
    return AgentInfo(**{**defaults, **fields})


def _wanted(**fields) -> reuse.Wanted:
    defaults = dict(provider="local", host="local", agent_type=TYPES["command"], agent_args=["sleep", "600"],
                    work_dir="/srv/job", labels={}, extra_windows=None)
    return reuse.Wanted(**{**defaults, **fields})


def test_an_agent_matches_what_a_create_would_make() -> None:
    assert reuse.differences(_info(labels={"team": "a", "more": "b"}), "local", "local",
                             _wanted(labels={"team": "a"})) == []
    # Claude's own session id is no difference.
    claude = _info(type="claude", command="claude --session-id 1234 --model opus")
    assert reuse.differences(claude, "local", "local",
                             _wanted(agent_type=TYPES["claude"], agent_args=["--model", "opus"])) == []
    # A work dir mngr would make is the agent's own: not compared.
    assert reuse.differences(_info(work_dir="/elsewhere"), "local", "local", _wanted(work_dir="")) == []


def test_each_difference_is_named() -> None:
    found = reuse.differences(
        _info(labels={"team": "b"}, extra_windows={"web": "npm start"}), "box", "ssh",
        _wanted(agent_args=["sleep", "5"], work_dir="/srv/other", labels={"team": "a"},
                extra_windows={"web": "npm run dev"}))
    assert found == [
        "it is on box (ssh), not local (local)",
        "its command is 'sleep 600', not 'sleep 5'",
        "its work dir is /srv/job, not /srv/other",
        "its label team is 'b', not 'a'",
        "its extra windows are web=npm start, not web=npm run dev",
    ]
    assert reuse.differences(_info(), "local", "local", _wanted(agent_type=TYPES["codex"])) == [
        "its type is command, not codex"]


def test_a_listing_filters_on_an_extra_window() -> None:
    from mngr.controller.agent_filter import compile_filter

    with_dev = {"name": "a", "extra_windows": {"dev": "npm run dev"}}
    without = {"name": "b", "extra_windows": {}}
    test = compile_filter("extra_windows.dev ~ 'npm *'")
    assert [row["name"] for row in (with_dev, without) if test(row)] == ["a"]
    assert [row["name"] for row in (with_dev, without) if compile_filter("extra_windows")(row)] == ["a"]
