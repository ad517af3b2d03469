"""A local Modal for the tests: the real ``modal`` SDK, pointed here with ``MODAL_SERVER_URL``
and a test token, talks to a gRPC server written on the SDK's own generated servicer bases
(``modal_proto.api_grpc.ModalClientBase``, ``modal_proto.task_command_router_grpc.
TaskCommandRouterBase``), whose sandboxes are containers on the tests' Docker engine.

    with running(root, base_image, docker_client) as server:
        env = server.env            # MODAL_SERVER_URL, MODAL_TOKEN_ID, MODAL_TOKEN_SECRET
        server.faults.fail("SandboxCreateV2", times=3)   # and delay, lose_reply, offline
        server.sandboxes()          # what was made, with the definitions the SDK sent

``server.py`` runs it; ``control.py`` is the control plane, ``router.py`` a sandbox's command
router (execs, snapshots), ``sandboxes.py`` the containers, ``blocks.py`` Volume file blocks.
Every call not implemented answers UNIMPLEMENTED with its name, and is recorded: the fixture
fails the test that made it. docs/modal-test-server.md says what it covers and how to add a call.
"""

from .server import TOKEN_ID, TOKEN_SECRET, Fault, Faults, ModalServer, running

__all__ = ["TOKEN_ID", "TOKEN_SECRET", "Fault", "Faults", "ModalServer", "running"]
