"""mngr open: an agent's web server, reached from this machine, on each kind of host.

Each agent serves a page of its own with ``python3 -m http.server`` from its work dir; what
`mngr open --print` prints must answer an HTTP GET with that page.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mngr.providers.ssh_ports import FORWARDS_FILE
from tests.conftest import Sandbox, wait_for
from tests.integration.test_ssh import started_host
from tests.sshd import SshHost, unavailable_reason

_no_sshd = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serving(page: str, port: int, bind: str = "127.0.0.1") -> list[str]:
    """An agent's command: write ``page`` as index.html in its work dir, and serve it."""
    return ["sh", "-c", f"echo '{page}' > index.html && exec python3 -m http.server {port} --bind {bind}"]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()


def _opened(sandbox: Sandbox, *args: str, env: dict[str, str] | None = None) -> str:
    """The URL `mngr open ARGS --print` prints, once the agent's server is up."""
    def attempt() -> str | None:
        result = sandbox.mngr("open", *args, "--print", env=env)
        if result.returncode == 0:
            return result.stdout.strip()
        assert "nothing listens on port" in result.stderr, result.stderr
        return None  # the agent's server is starting

    return str(wait_for(attempt, f"mngr open {' '.join(args)}"))


def _refusal(sandbox: Sandbox, *args: str) -> str | None:
    """What `mngr open ARGS` fails with (exit status 1), once the agent's server is up."""
    result = sandbox.mngr("open", *args, "--print")
    assert result.returncode == 1 and result.stdout == "", result
    return None if "nothing listens on port" in result.stderr else result.stderr


# -- the local host ----------------------------------------------------------------------


def test_a_local_agents_port_opens_as_it_is(sandbox: Sandbox) -> None:
    port = _free_port()
    created = sandbox.mngr("create", "site", "command", "--no-connect", "--", *_serving("local page", port))
    assert created.returncode == 0, created.stderr
    url = _opened(sandbox, "site", str(port))
    assert url == f"http://localhost:{port}/"
    assert _get(url) == "local page\n"

    record = sandbox.mngr("open", "site", str(port), "--print", "--format", "json")
    assert json.loads(record.stdout) | {"schema_version": 0} == {
        "schema_version": 0, "agent": "site", "host": "local", "provider": "local", "name": "",
        "remote_url": url, "local_url": url, "browser": ""}


def test_declared_and_published_urls_open_by_name(sandbox: Sandbox) -> None:
    web, api = _free_port(), _free_port()
    command = (f"python3 -m http.server {api} --bind 127.0.0.1 >/dev/null 2>&1 & "
               f"echo 'docs=http://localhost:{api}/index.html' > \"$MNGR_AGENT_DIR/urls\"; "
               f"echo 'declared page' > index.html && exec python3 -m http.server {web} --bind 127.0.0.1")
    created = sandbox.mngr("create", "site", "command", "--no-connect", "--port", f"{web}:web", "--port", str(api),
                           "--", "sh", "-c", command)
    assert created.returncode == 0, created.stderr
    url = _opened(sandbox, "site", "web")
    assert url == f"http://localhost:{web}/" and _get(url) == "declared page\n"
    assert _opened(sandbox, "site") == url  # the first URL
    assert _opened(sandbox, "site", str(api)) == f"http://localhost:{api}/"  # a declared port by number
    # What the agent published: its path stays.
    published = str(wait_for(lambda: "docs" in sandbox.mngr("list", "--format", "json").stdout and
                             _opened(sandbox, "site", "docs"), "the published URL"))
    assert published == f"http://localhost:{api}/index.html" and _get(published) == "declared page\n"
    record = json.loads(sandbox.mngr("open", "site", str(web), "--print", "--format", "json").stdout)
    assert (record["name"], record["local_url"]) == ("web", url)
    unknown = sandbox.mngr("open", "site", "nosuch")
    assert unknown.stderr == (f"mngr: error: agent 'site' has no URL named 'nosuch' "
                              f"(its URLs: web, {api}, docs)\n") and unknown.returncode == 1


def test_the_browser_gets_the_url(sandbox: Sandbox) -> None:
    port = _free_port()
    assert sandbox.mngr("create", "site", "command", "--no-connect", "--", *_serving("p", port)).returncode == 0
    url = _opened(sandbox, "site", str(port))
    seen = sandbox.root / "browser-saw"
    browser = sandbox.root / "browser"
    browser.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {seen}\n")
    browser.chmod(0o755)
    # The first of $BROWSER's commands that cannot run is passed over, as webbrowser does.
    opened = sandbox.mngr("open", "site", str(port), env={"BROWSER": f"{sandbox.root}/no-such-browser:{browser}"})
    assert opened.returncode == 0, opened.stderr
    assert seen.read_text() == f"{url}\n"
    assert opened.stdout == f"opened {url} ({url} of agent site on local) with {browser}\n"
    # %s stands for the URL where it is.
    assert sandbox.mngr("open", "site", str(port), env={"BROWSER": f"{browser} --new-tab=%s --"}).returncode == 0
    assert seen.read_text().splitlines()[1:] == [f"--new-tab={url}", "--"]


def test_no_browser_here_prints_the_url(sandbox: Sandbox) -> None:
    port = _free_port()
    assert sandbox.mngr("create", "site", "command", "--no-connect", "--", *_serving("p", port)).returncode == 0
    url = _opened(sandbox, "site", str(port))
    env = {key: "" for key in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY")}
    opened = sandbox.mngr("open", "site", str(port), env=env)
    assert (opened.returncode, opened.stdout) == (0, f"{url}\n"), opened.stderr


def test_what_cannot_be_opened_is_one_line_and_a_failure(sandbox: Sandbox) -> None:
    port = _free_port()
    assert sandbox.mngr("create", "site", "command", "--no-connect", "--", "sleep", "600").returncode == 0
    cases = {
        ("site", str(port)): f"mngr: error: nothing listens on port {port} on host local\n",
        ("site",): "mngr: error: agent 'site' has no URLs: name a port (mngr open site PORT), "
                   "or declare one (mngr create --port PORT[:NAME])\n",
        ("site", "web"): "mngr: error: agent 'site' has no URL named 'web' (its URLs: none)\n",
        ("site", "70000"): "mngr: error: invalid port '70000': a TCP port is 1 to 65535\n",
        ("nosuch", "80"): "mngr: error: no agent named 'nosuch'\n",
    }
    for args, error in cases.items():
        result = sandbox.mngr("open", *args, "--print")
        assert (result.returncode != 0, result.stdout, result.stderr) == (True, "", error), args
    assert sandbox.mngr("stop", "site").returncode == 0
    stopped = sandbox.mngr("open", "site", str(port))
    assert (stopped.returncode, stopped.stderr) == (1, "mngr: error: agent 'site' is stopped: start it first "
                                                       "(mngr start site)\n")


# -- an SSH host: a forward through the shared connection ---------------------------------


@pytest.fixture
def ssh_host(sandbox: Sandbox) -> Iterator[SshHost]:
    with started_host(sandbox, "testhost") as host:
        yield host


def _forwards(sandbox: Sandbox) -> dict:
    path = sandbox.state_dir / FORWARDS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _ssh_mux(sandbox: Sandbox, command: str, host: str = "testhost", *options: str
             ) -> subprocess.CompletedProcess[str]:
    """``ssh -O COMMAND`` to the shared connection of mngr's commands to ``host``."""
    return subprocess.run(["ssh", "-F", sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"], "-o",
                           f"ControlPath={sandbox.state_dir}/ssh/%C", "-O", command, *options, host],
                          capture_output=True, text=True)


def _master_listening_ports(sandbox: Sandbox) -> list[int]:
    """The TCP ports the host's ssh connection master listens on here (its forwards)."""
    pid = int(_ssh_mux(sandbox, "check").stderr.split("pid=")[1].split(")")[0])
    inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    ports = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and f"socket:[{fields[9]}]" in inodes:
            ports.append(int(fields[1].split(":")[1], 16))
    return sorted(ports)


@_no_sshd
def test_an_ssh_agents_port_through_one_forward_until_it_stops(sandbox: Sandbox, ssh_host: SshHost) -> None:
    port = _free_port()
    created = sandbox.mngr("create", "far", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                           "--", *_serving("far page", port))
    assert created.returncode == 0, created.stderr
    url = _opened(sandbox, "far", str(port))
    local_port = int(url.rsplit(":", 1)[1].rstrip("/"))
    assert url == f"http://127.0.0.1:{local_port}/" and local_port != port
    assert _get(url) == "far page\n"

    # Later opens, two of them at once, reuse that forward: the master holds one.
    racing = [subprocess.Popen([str(Path(sys.executable).with_name("mngr")), "open", "far", str(port), "--print"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=sandbox.env,
                               stdin=subprocess.DEVNULL)
              for _ in range(2)]
    assert [process.communicate(timeout=60)[0] for process in racing] == [f"{url}\n"] * 2
    assert _master_listening_ports(sandbox) == [local_port]
    (forward,) = _forwards(sandbox).values()
    assert (forward["host"], forward["port"], forward["local_port"]) == ("testhost", port, local_port)

    # A second port of the host: a forward of its own.
    other = _free_port()
    assert sandbox.mngr("exec", "far", f"nohup python3 -m http.server {other} --bind 127.0.0.1 "
                                       ">/dev/null 2>&1 &").returncode == 0
    other_url = _opened(sandbox, "far", str(other))
    assert other_url != url and _get(other_url).startswith("far page")
    assert len(_master_listening_ports(sandbox)) == 2

    # The master exits (as it does 10 minutes after its last use), the forwards with it: the
    # next open makes the forward again, on the same local port, so an open page works again.
    _ssh_mux(sandbox, "exit")
    with pytest.raises(OSError):
        _get(url)
    assert _opened(sandbox, "far", str(port)) == url and _get(url) == "far page\n"
    assert _master_listening_ports(sandbox) == [local_port]

    stopped = sandbox.mngr("stop", "far")
    assert stopped.returncode == 0, stopped.stderr
    assert _forwards(sandbox) == {} and _master_listening_ports(sandbox) == []
    with pytest.raises(OSError):
        _get(url)

    # Destroyed, its forwards go too.
    assert sandbox.mngr("start", "far").returncode == 0
    assert _get(_opened(sandbox, "far", str(port))) == "far page\n"
    assert len(_forwards(sandbox)) == 1
    destroyed = sandbox.mngr("destroy", "-f", "far")
    assert destroyed.returncode == 0, destroyed.stderr
    assert _forwards(sandbox) == {} and _master_listening_ports(sandbox) == []


@_no_sshd
def test_agents_on_several_hosts_open_at_once_each_its_own(sandbox: Sandbox) -> None:
    client_dir = sandbox.root / "client"
    client_dir.mkdir()
    hosts = []
    try:
        hosts += [SshHost("east", client_dir), SshHost("west", client_dir)]
        for host in hosts:
            host.trust()
        config = sandbox.root / "ssh_config"
        config.write_text("".join(host.client_config() for host in hosts))
        sandbox.env["MNGR_PROVIDERS__SSH__SSH_CONFIG"] = str(config)
        # The hosts are all this machine: each server on a port of its own.
        for name, host in (("a-east", "east"), ("a-west", "west")):
            port = _free_port()
            created = sandbox.mngr("create", name, "command", "--in", "ssh", "--host", host, "--no-connect",
                                   "--port", f"{port}:web", "--", *_serving(f"page of {name}", port))
            assert created.returncode == 0, created.stderr
            _opened(sandbox, name, "web")
        for noted in _forwards(sandbox).values():  # opened afresh below, both at once
            _ssh_mux(sandbox, "cancel", noted["host"], "-L", noted["spec"])
        (sandbox.state_dir / FORWARDS_FILE).write_text("{}")
        opening = {name: subprocess.Popen([str(Path(sys.executable).with_name("mngr")), "open", name, "--print"],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=sandbox.env,
                                          stdin=subprocess.DEVNULL)
                   for name in ("a-east", "a-west")}
        urls = {name: process.communicate(timeout=60)[0].strip() for name, process in opening.items()}
        assert len(set(urls.values())) == 2 and all(url.startswith("http://127.0.0.1:") for url in urls.values())
        assert {name: _get(url) for name, url in urls.items()} == {
            "a-east": "page of a-east\n", "a-west": "page of a-west\n"}
        assert sorted(forward["host"] for forward in _forwards(sandbox).values()) == ["east", "west"]
        # One host's agent stopped: its forward goes, the other host's stays.
        assert sandbox.mngr("stop", "a-east").returncode == 0
        assert [forward["host"] for forward in _forwards(sandbox).values()] == ["west"]
        assert _get(urls["a-west"]) == "page of a-west\n"
    finally:
        for host in hosts:
            host.stop()


@_no_sshd
def test_a_port_nobody_listens_on_over_ssh(sandbox: Sandbox, ssh_host: SshHost) -> None:
    created = sandbox.mngr("create", "far", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                           "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    port = _free_port()
    result = sandbox.mngr("open", "far", str(port))
    assert (result.returncode, result.stderr) == (1, f"mngr: error: nothing listens on port {port} on host testhost\n")
    assert _forwards(sandbox) == {}


# -- a Docker container -------------------------------------------------------------------


@pytest.fixture
def dock(sandbox: Sandbox, docker_client, docker_base_image: str) -> Iterator[Sandbox]:
    namespace = "t" + uuid.uuid4().hex[:10]
    sandbox.env["MNGR_PROVIDERS__DOCKER__NAMESPACE"] = namespace
    sandbox.env["MNGR_PROVIDERS__DOCKER__BASE_IMAGE"] = docker_base_image
    try:
        yield sandbox
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": f"mngr.namespace={namespace}"}):
            container.remove(force=True)


@pytest.mark.docker
def test_a_containers_port_at_its_address(dock: Sandbox) -> None:
    inside, loopback_only = 8000, 8001
    command = (f"python3 -m http.server {loopback_only} --bind 127.0.0.1 >/dev/null 2>&1 & "
               f"echo 'box page' > index.html && exec python3 -m http.server {inside} --bind 0.0.0.0")
    created = dock.mngr("create", "box", "command", "--in", "docker", "--no-connect", "--", "sh", "-c", command,
                        timeout=300)
    assert created.returncode == 0, created.stderr
    url = _opened(dock, "box", str(inside))
    assert url.startswith("http://") and url.endswith(f":{inside}/") and "localhost" not in url
    assert _get(url) == "box page\n"

    assert wait_for(lambda: _refusal(dock, "box", str(loopback_only)), "the loopback-only server") == (
        f"mngr: error: port {loopback_only} of docker host box listens only on the container's loopback; "
        "make it listen on 0.0.0.0\n")


@pytest.mark.docker
def test_a_declared_port_is_published_on_this_machines_loopback(dock: Sandbox, docker_client) -> None:
    command = ("python3 -m http.server 8001 --bind 127.0.0.1 >/dev/null 2>&1 & "
               "echo 'published page' > index.html && exec python3 -m http.server 8000 --bind 0.0.0.0")
    created = dock.mngr("create", "pub", "command", "--in", "docker", "--no-connect", "--port", "8000:site",
                        "--port", "8001:inner", "--", "sh", "-c", command, timeout=300)
    assert created.returncode == 0, created.stderr
    namespace = dock.env["MNGR_PROVIDERS__DOCKER__NAMESPACE"]
    (container,) = docker_client.containers.list(filters={"label": ["mngr.host=pub", f"mngr.namespace={namespace}"]})
    (binding,) = container.attrs["NetworkSettings"]["Ports"]["8000/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    url = _opened(dock, "pub", "site")
    assert url == f"http://127.0.0.1:{binding['HostPort']}/"
    assert _get(url) == "published page\n"
    assert _opened(dock, "pub") == url

    # Published or not, a server on the container's loopback is out of reach: said so.
    assert wait_for(lambda: _refusal(dock, "pub", "inner"), "the loopback-only server") == (
        "mngr: error: port 8001 of docker host pub listens only on the container's loopback; "
        "make it listen on 0.0.0.0\n")


# -- a Modal sandbox (the local Modal server) -----------------------------------------------


@pytest.mark.docker
def test_a_modal_host_tunnels_the_declared_ports_only(modal_server: Sandbox) -> None:
    created = modal_server.mngr("create", "job", "command", "--in", "modal", "--no-connect", "--port", "8000:web",
                                "--", *_serving("modal page", 8000, bind="0.0.0.0"), timeout=300)
    assert created.returncode == 0, created.stderr
    (record,) = [record for record in modal_server.modal.sandboxes(running_only=True)
                 if record["tags"].get("mngr-namespace") == modal_server.namespace]
    assert [(port.port, port.unencrypted) for port in record["definition"].open_ports.ports] == [(8000, False)]

    # Through the tunnel: https, checked against the (local) Modal's certificate authority.
    url = _opened(modal_server, "job", "web")
    assert url.startswith("https://localhost:") and url.endswith("/")
    tls = ssl.create_default_context(cafile=str(modal_server.modal.tunnel_authority.ca_file))
    with urllib.request.urlopen(url, timeout=10, context=tls) as answer:
        assert answer.read().decode() == "modal page\n"

    assert modal_server.mngr("exec", "job", "nohup python3 -m http.server 9000 >/dev/null 2>&1 &").returncode == 0

    assert wait_for(lambda: _refusal(modal_server, "job", "9000"), "the server on port 9000") == (
        "mngr: error: port 9000 of modal host job has no tunnel: Modal tunnels only the ports declared when "
        "the host was made (mngr create --port)\n")


@_no_sshd
def test_a_host_that_does_not_answer_is_one_line(sandbox: Sandbox, ssh_host: SshHost) -> None:
    created = sandbox.mngr("create", "far", "command", "--in", "ssh", "--host", "testhost", "--no-connect",
                           "--", "sleep", "600")
    assert created.returncode == 0, created.stderr
    _ssh_mux(sandbox, "exit")
    ssh_host.stop()
    result = sandbox.mngr("open", "far", "8000")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("mngr: error: agent 'far' was last seen on host 'testhost' (ssh), which does "
                                    "not answer: ") and "Connection refused" in result.stderr
    assert result.stderr.count("\n") == 1
