"""`mngr web` as a user meets it: a real server process over real agents, its page driven in
a real headless chromium (one for the module), and requests from elsewhere refused."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import wait_for
from tests.integration.test_ssh import started_host
from tests.sshd import unavailable_reason as ssh_unavailable
from tests.web_dashboard import headless_chromium, running_dashboard, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")

QUIET = {"MNGR_AGENT_QUIET_SECONDS": "1"}  # a quiet agent is WAITING after a second
ECHO = ("sh", "-c", 'while read line; do echo "got: $line"; done')


@pytest.fixture(scope="module")
def browser() -> Iterator:
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def create(sandbox, name: str, *command: str, extra: tuple[str, ...] = ()) -> None:
    created = sandbox.mngr("create", name, "command", "--no-connect", *extra, "--", *(command or ("sleep", "600")))
    assert created.returncode == 0, created.stderr


def cli_listing(sandbox, env: dict[str, str] | None = None) -> dict:
    listed = sandbox.mngr("list", "--format", "json", env=env)
    return json.loads(listed.stdout)


def page_rows(browser) -> list[dict[str, str]]:
    return browser.execute_script(
        "return [...document.querySelectorAll('tr.agent')].map(row => "
        "({name: row.dataset.agent, state: row.dataset.state, host: row.dataset.host}))")


def state_of(browser, name: str) -> str | None:
    """The state the page shows for agent ``name`` (read in one step: rows are remade when agents change)."""
    return browser.execute_script(
        "const row = document.querySelector(`tr.agent[data-agent=\"${arguments[0]}\"]`);"
        "return row ? row.dataset.state : null;", name)


def texts(browser, selector: str) -> list[str]:
    """The text of each element ``selector`` finds, read in one step (the page remakes them)."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(element => element.textContent)", selector)


def page_text(browser) -> str:
    """The text of the page the window shows ("" while it goes from one page to the next)."""
    from selenium.common.exceptions import WebDriverException

    try:
        return browser.execute_script("return document.body ? document.body.textContent : ''")
    except WebDriverException:
        return ""


def click_in_row(browser, name: str, selector: str) -> None:
    """Click ``selector`` in agent ``name``'s row, as a user would; a row remade by the page's
    renewal between finding and clicking (its agent changed) is found again."""
    from selenium.common.exceptions import StaleElementReferenceException

    def clicked() -> bool:
        try:
            browser.find_element("css selector", f'tr.agent[data-agent="{name}"] {selector}').click()
        except StaleElementReferenceException:
            return False
        return True

    wait_for(clicked, f"a click on {selector} of {name}")


def confirm_dialog(browser) -> None:
    dialog = browser.find_element("id", "confirm")
    wait_for(lambda: dialog.get_attribute("open") is not None, "the confirmation dialog")
    browser.find_element("id", "confirm-ok").click()


@pytest.mark.skipif(ssh_unavailable() is not None, reason=ssh_unavailable() or "")
def test_the_page_lists_what_mngr_list_lists(sandbox, browser) -> None:
    with started_host(sandbox, "far-box"):
        _listing_matches(sandbox, browser)


def _listing_matches(sandbox, browser) -> None:
    create(sandbox, "alpha", extra=("--label", "team=web"))
    create(sandbox, "beta")
    create(sandbox, "gamma", "sh", "-c", "echo busy; sleep 600")
    assert sandbox.mngr("stop", "gamma").returncode == 0
    create(sandbox, "delta", extra=("--in", "ssh", "--host", "far-box"))
    with running_dashboard(sandbox, QUIET) as dashboard:
        browser.get(dashboard.url)

        expected = {"alpha": ("WAITING", "local"), "beta": ("WAITING", "local"), "gamma": ("STOPPED", "local"),
                    "delta": ("WAITING", "far-box")}

        def places(rows: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
            return {row["name"]: (row["state"], row["host"]) for row in rows}

        wait_for(lambda: places(cli_listing(sandbox, QUIET)["agents"]) == expected, "the quiet agents WAITING")
        wait_for(lambda: places(page_rows(browser)) == places(cli_listing(sandbox, QUIET)["agents"]),
                 "the page to list what mngr list lists")
        groups = texts(browser, "tr.group")
        assert groups == ["far-box (ssh) · 1 agent", "local (local) · 3 agents"]
        # The server's listing is `mngr list --format json`'s document itself.
        status, body = dashboard.api("GET", "/api/agents")
        assert status == 200
        served = json.loads(body)["listing"]
        printed = cli_listing(sandbox, QUIET)
        for document in (served, printed):  # less what changes from one moment to the next
            for record in document["agents"] + document["hosts"]:
                for moving in ("idle_seconds", "last_activity", "last_activity_agent"):
                    record.pop(moving, None)
        assert served == printed
        # The label is shown, the address bar no longer holds the token (the cookie does).
        assert "team=web" in browser.execute_script(
            "return document.querySelector('tr.agent[data-agent=\"alpha\"]').textContent")
        assert "token" not in browser.current_url
        assert texts(browser, ".host-error") == []
        # The page names the agent of its row with its place: NAME@PROVIDER/HOST.
        status, body = dashboard.api("POST", "/api/agents/delta/stop", b'{"host": "local", "provider": "local"}')
        assert status == 400 and json.loads(body)["lines"][0].startswith("mngr: error: "), body
        status, body = dashboard.api("POST", "/api/agents/delta/stop", b'{"host": "far-box", "provider": "ssh"}')
        assert json.loads(body)["lines"] == ["stopped agent delta (command) on far-box [STOPPED]"], body


def test_a_message_typed_in_the_page_reaches_the_agent(sandbox, browser) -> None:
    create(sandbox, "echo", *ECHO)
    with running_dashboard(sandbox) as dashboard:
        browser.get(dashboard.url)
        wait_for(lambda: page_rows(browser), "the agent listed")
        click_in_row(browser, "echo", "td.name")
        box = browser.find_element("id", "message-text")
        box.send_keys("hello from the page")
        browser.find_element("id", "message-send").click()
        result = browser.find_element("id", "message-result")
        wait_for(lambda: "sent message to echo" in result.text, "the message's result")
        # The agent got it (its output, as mngr transcript reads it), and the page follows it.
        transcript = sandbox.mngr("transcript", "echo")
        assert "got: hello from the page" in transcript.stdout.splitlines(), transcript.stdout
        shown = browser.find_element("id", "transcript")
        wait_for(lambda: "got: hello from the page" in shown.text, "the reply in the page's transcript")

        # A message the CLI would refuse shows the CLI's line.
        assert sandbox.mngr("stop", "echo").returncode == 0
        box.send_keys("anyone there?")
        browser.find_element("id", "message-send").click()
        refused = "mngr: error: message echo: agent 'echo' is stopped: start it with `mngr start echo` or pass --start"
        wait_for(lambda: result.text == refused, "the CLI's error on the page")
        assert "error" in result.get_attribute("class")


def test_a_stop_confirmed_in_the_page_stops_the_agent(sandbox, browser) -> None:
    create(sandbox, "worker")
    create(sandbox, "bystander")
    with running_dashboard(sandbox) as dashboard:
        browser.get(dashboard.url)
        wait_for(lambda: len(page_rows(browser)) == 2, "both agents listed")
        click_in_row(browser, "worker", "button.stop")
        confirm_dialog(browser)
        wait_for(lambda: state_of(browser, "worker") == "STOPPED",
                 "the stop shown in the page")
        states = {agent["name"]: agent["state"] for agent in cli_listing(sandbox)["agents"]}
        assert states["worker"] == "STOPPED" and states["bystander"] in ("RUNNING", "WAITING")
        assert sandbox.sessions() == ["mngr-bystander"]
        notice = browser.find_element("id", "notice")
        wait_for(lambda: notice.text == "stopped agent worker (command) on local [STOPPED]", "what stop printed")

        # Started again, then destroyed, each after its confirmation.
        click_in_row(browser, "worker", "button.start")
        confirm_dialog(browser)
        wait_for(lambda: state_of(browser, "worker") in ("RUNNING", "WAITING"),
                 "the start shown in the page")
        click_in_row(browser, "worker", "button.destroy")
        confirm_dialog(browser)
        wait_for(lambda: [row["name"] for row in page_rows(browser)] == ["bystander"], "the destroy shown")
        assert [agent["name"] for agent in cli_listing(sandbox)["agents"]] == ["bystander"]
        # Cancelled: nothing happens.
        click_in_row(browser, "bystander", "button.stop")
        wait_for(lambda: browser.find_element("id", "confirm").get_attribute("open") is not None, "the dialog")
        browser.find_element("id", "confirm-cancel").click()
        assert [agent["state"] for agent in cli_listing(sandbox)["agents"]] != ["STOPPED"]


def test_requests_without_the_token_or_from_elsewhere_are_refused(sandbox) -> None:
    create(sandbox, "guarded")
    with running_dashboard(sandbox) as dashboard:
        token = dashboard.token
        own = f"http://127.0.0.1:{dashboard.port}"
        cookie = f"mngr_web_{dashboard.port}={token}"
        refused = [
            ("GET", "/", {}),
            ("GET", "/api/agents", {}),
            ("GET", "/api/agents?token=wrong", {}),
            ("GET", "/static/app.js", {}),
            ("GET", "/api/agents/guarded/transcript", {}),
            ("GET", "/no/such/page", {}),
            # the token, but from another site's page
            ("GET", f"/api/agents?token={token}", {"Origin": "http://evil.example"}),
            ("GET", f"/api/agents?token={token}", {"Origin": "null"}),
            ("GET", f"/api/agents?token={token}", {"Sec-Fetch-Site": "cross-site"}),
            # a name of another site's, rebound to 127.0.0.1
            ("GET", f"/api/agents?token={token}", {"Host": f"evil.example:{dashboard.port}"}),
            # a change with the token only where a forged request carries it too
            ("POST", "/api/agents/guarded/stop", {"Cookie": cookie}),
            ("POST", f"/api/agents/guarded/stop?token={token}", {}),
            ("POST", "/api/agents/guarded/stop", {"X-Mngr-Token": token, "Origin": "http://evil.example"}),
            ("PUT", "/api/agents/guarded/stop", {"X-Mngr-Token": token}),
        ]
        for method, path, headers in refused:
            status, body = dashboard.request(method, path, headers, b"{}" if method != "GET" else None)
            assert status == 403, (method, path, headers, status, body)
            assert json.loads(body)["ok"] is False
        assert [a["state"] for a in cli_listing(sandbox)["agents"]] != ["STOPPED"]

        status, page = dashboard.request("GET", f"/?token={token}", {"Origin": own})
        assert status == 200 and "<table id=\"agents\">" in page
        assert dashboard.request("GET", "/api/agents", {"Cookie": cookie})[0] == 200
        assert dashboard.request("GET", "/api/agents", {"Host": f"localhost:{dashboard.port}",
                                                         "X-Mngr-Token": token})[0] == 200
        status, body = dashboard.request("POST", "/api/agents/guarded/stop", {"X-Mngr-Token": token, "Origin": own})
        assert status == 200, body
        assert json.loads(body)["lines"] == ["stopped agent guarded (command) on local [STOPPED]"]
        assert [a["state"] for a in cli_listing(sandbox)["agents"]] == ["STOPPED"]


def test_unreachable_hosts_do_not_keep_the_page_from_the_others(sandbox, browser) -> None:
    create(sandbox, "near")
    silent = socket.socket()  # accepts connections and never says a word: a host that hangs
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    config = sandbox.config_dir / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[hosts.closed]\naddress = "mngr-test@127.0.0.1:1"\n'
                      f'[hosts.silent]\naddress = "mngr-test@127.0.0.1:{silent.getsockname()[1]}"\n')
    # ssh would wait longer than mngr: every listing ends the silent host's wait the same way.
    slow = {"MNGR_HOST_TIMEOUT_SECONDS": "8", "MNGR_PROVIDERS__SSH__CONNECT_TIMEOUT": "30",
            "MNGR_PROVIDERS__SSH__ACCEPT_NEW_HOST_KEYS": "true"}
    try:
        with running_dashboard(sandbox, slow) as dashboard:
            browser.get(dashboard.url)
            wait_for(lambda: [row["name"] for row in page_rows(browser)] == ["near"], "the local agent listed",
                     timeout=60)
            errors = texts(browser, ".host-error")
            cli_errors = cli_listing(sandbox, slow)["errors"]
            assert sorted(errors) == sorted(f"mngr: error: host '{e['host']}' ({e['provider']}): {e['error']}"
                                            for e in cli_errors)
            assert {error["host"] for error in cli_errors} == {"closed", "silent"}
            # The next listing waits for the silent host again: meanwhile the last one is served,
            # the page says so, and the agents can be worked with.
            status = browser.find_element("id", "status")
            wait_for(lambda: "showing the last listing" in status.text, "the stale note", timeout=60)

            def served_while_listing() -> dict | None:
                snapshot = json.loads(dashboard.api("GET", "/api/agents")[1])
                return snapshot if snapshot["listing"] and snapshot["refreshing_since"] else None

            snapshot = wait_for(served_while_listing, "the last listing served during the next", timeout=60)
            assert [agent["name"] for agent in snapshot["listing"]["agents"]] == ["near"]
            assert {error["host"] for error in snapshot["listing"]["errors"]} == {"closed", "silent"}
            answer = json.loads(dashboard.api("POST", "/api/agents/near/message", b'{"text": "still here"}')[1])
            assert answer == {"ok": True, "lines": ["sent message to near (10 bytes)"], "url": None,
                              "can_force": False}
    finally:
        done.set()
        acceptor.join()
        for connection in held:
            connection.close()
        silent.close()


def test_the_served_page_fetches_nothing_from_elsewhere(sandbox) -> None:
    with running_dashboard(sandbox) as dashboard:
        status, page = dashboard.api("GET", "/")
        assert status == 200
        for asset in ("/static/app.js", "/static/style.css"):
            assert f'"{asset}"' in page
            code, text = dashboard.api("GET", asset)
            assert code == 200 and text
            assert "http://" not in text and "https://" not in text
        assert "http://" not in page and "https://" not in page
        assert dashboard.token in page  # for the page's own requests' header


def test_an_agents_url_opens_from_the_page(sandbox, browser) -> None:
    site = sandbox.root / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>served by the agent</h1>")
    port = _closed_port()  # until the agent listens on it
    create(sandbox, "site", "python3", "-m", "http.server", str(port), "--bind", "127.0.0.1",
           "--directory", str(site), extra=("--port", f"{port}:preview"))
    create(sandbox, "nothing", extra=("--port", f"{_closed_port()}:ghost"))
    wait_for(lambda: _answers(port), "the agent's server listening")
    with running_dashboard(sandbox) as dashboard:
        browser.get(dashboard.url)
        link = wait_for(lambda: browser.execute_script(
            "const link = document.querySelector('tr[data-agent=\"site\"] a.agent-url');"
            "return link && [link.textContent, link.href];"), "the agent's URL shown")
        assert link == ["preview", f"http://localhost:{port}/"]
        own = browser.current_window_handle
        click_in_row(browser, "site", "a.agent-url")
        wait_for(lambda: len(browser.window_handles) == 2, "a window for the URL")
        browser.switch_to.window(next(handle for handle in browser.window_handles if handle != own))
        try:
            wait_for(lambda: "served by the agent" in page_text(browser), "the agent's page")
            assert browser.current_url == f"http://localhost:{port}/"  # the local host: as it is
        finally:
            browser.close()
            browser.switch_to.window(own)
        # A URL nobody serves: the window is closed again and the CLI's error shown.
        click_in_row(browser, "nothing", "a.agent-url")
        notice = browser.find_element("id", "notice")
        wait_for(lambda: notice.text.startswith("mngr: error: nothing listens on port"), "the CLI's error")
        wait_for(lambda: browser.window_handles == [own], "the unused window closed")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_destroy_that_would_lose_work_is_refused_then_forced(sandbox, browser) -> None:
    create(sandbox, "careful")
    work_dir = next(agent["work_dir"] for agent in cli_listing(sandbox)["agents"])
    (sandbox.host_dir / "work" / "careful" / "notes.txt").write_text("not pulled yet\n")
    assert work_dir == str(sandbox.host_dir / "work" / "careful")
    with running_dashboard(sandbox) as dashboard:
        browser.get(dashboard.url)
        wait_for(lambda: page_rows(browser), "the agent listed")
        click_in_row(browser, "careful", "button.destroy")
        confirm_dialog(browser)
        # The command's refusal, and a second question before destroying anyway.
        refusal = browser.find_element("id", "confirm-error")
        wait_for(lambda: refusal.text.startswith("mngr: error: refusing to destroy: agent careful has files "
                                                 "changed since it was made (notes.txt"), "the refusal")
        assert browser.find_element("id", "confirm-ok").text == "Destroy anyway"
        assert [agent["name"] for agent in cli_listing(sandbox)["agents"]] == ["careful"]
        browser.find_element("id", "confirm-ok").click()
        notice = browser.find_element("id", "notice")
        wait_for(lambda: notice.text == "destroyed agent careful on local", "the forced destroy")
        assert cli_listing(sandbox)["agents"] == []
        wait_for(lambda: page_rows(browser) == [], "the agent gone from the page")


def test_ctrl_c_stops_it_and_a_taken_port_is_a_one_line_error(sandbox) -> None:
    with running_dashboard(sandbox) as dashboard:
        assert dashboard.api("GET", "/api/agents")[0] == 200
        taken = sandbox.mngr("web", "--no-browser", "--port", str(dashboard.port), timeout=30)
        assert (taken.returncode, taken.stdout) == (2, "")
        assert taken.stderr == f"mngr: error: cannot listen on 127.0.0.1:{dashboard.port}: Address already in use\n"
        dashboard.process.send_signal(signal.SIGINT)
        assert dashboard.process.wait(timeout=30) == 0
        assert dashboard.process.stderr is not None
        assert dashboard.process.stderr.read() == ("mngr: the dashboard is at the URL above (open it in your "
                                                  "browser); Ctrl-C stops it\n")


def test_an_agent_held_by_a_dialog_shows_why_and_a_message_gets_the_clis_refusal(agent_user, browser) -> None:
    sandbox = agent_user.sandbox
    untrusted = sandbox.root / "untrusted"
    untrusted.mkdir()
    created = sandbox.mngr("create", "stranger", "-t", "claude", "--no-connect", "--work-dir", str(untrusted),
                           timeout=120)
    assert "was created, but is not ready for input" in created.stderr  # held by the dialog: as it should be
    with running_dashboard(sandbox) as dashboard:
        browser.get(dashboard.url)
        wait_for(lambda: texts(browser, 'tr[data-agent="stranger"] td.state') == ["WAITING (trust)"],
                 "the dialog the agent waits on", timeout=60)
        click_in_row(browser, "stranger", "td.name")
        browser.find_element("id", "message-text").send_keys("hello")
        browser.find_element("id", "message-send").click()
        result = browser.find_element("id", "message-result")
        wait_for(lambda: result.text.startswith("mngr: error: message stranger: "), "the CLI's refusal", timeout=90)
        cli = sandbox.mngr("message", "stranger", "hello", timeout=120)
        assert cli.returncode == 1 and cli.stderr.strip() == result.text
        assert "trust" in result.text
        assert not agent_user.standin.received("hello")
