"""The helper answers every request of the protocol from one table, and nothing else."""

from __future__ import annotations

import os

from mngr.controller.channel import protocol
from mngr.remote_helper import server, wire


def test_every_request_type_has_a_handler_and_no_handler_is_for_an_unknown_type() -> None:
    controller_requests = {request.__name__ for request in protocol.REQUEST_TYPES}
    helper_requests = set(wire.MESSAGES) - server._REPLY_TYPES
    assert controller_requests == helper_requests
    assert set(server.HANDLERS) == controller_requests


def test_every_handler_is_a_method_of_the_server() -> None:
    for message_type, handler in server.HANDLERS.items():
        assert getattr(server.Server, handler.__name__) is handler, message_type


def test_a_request_without_a_handler_is_refused_by_name() -> None:
    read_end, write_end = os.pipe()
    try:
        helper = server.Server(read_end, write_end, "test")
        try:
            helper._dispatch("NoSuchRequest", {}, b"")
        except wire.ProtocolError as exc:
            assert exc.code == "unknown_type"
            assert "NoSuchRequest" in exc.message
        else:
            raise AssertionError("an unknown request type was dispatched")
    finally:
        os.close(read_end)
        os.close(write_end)
