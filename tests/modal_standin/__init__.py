"""A stand-in for the ``modal`` SDK, for testing mngr's Modal provider without Modal's cloud.

Put this directory on ``PYTHONPATH`` and ``import modal`` resolves to ``modal/`` here instead
of the installed SDK, in every process (mngr runs as many short processes, so state is shared
through files, not memory). Each "sandbox" is a real Docker container; ``exec`` is ``docker
exec -i`` with binary pipes, the way the real SDK streams an exec's stdin and stdout.

Environment:

``MNGR_MODAL_STANDIN_DIR``         (required) the directory of the shared state (``state.json``);
                                   every Docker object made for it carries a label naming it
``MNGR_MODAL_STANDIN_BASE_IMAGE``  the local Docker image that ``Image.debian_slim()`` (and a
                                   sandbox created without an image) runs, e.g. the tests' image
``MNGR_MODAL_STANDIN_FAULTS``      comma-separated faults to inject: ``offline`` (every call that
                                   would reach Modal raises ``ConnectionError``), ``create-offline``
                                   (``Sandbox.create`` fails before making anything),
                                   ``create-lost`` (it makes the sandbox, then the reply is lost),
                                   ``create-lost-then-offline`` (that, and then Modal cannot be
                                   reached, by any process, until the state dir's ``faults``
                                   file is removed)
``MODAL_TOKEN_ID`` / ``MODAL_TOKEN_SECRET`` / ``MODAL_CONFIG_PATH`` / ``MODAL_PROFILE``
                                   credentials, found (or missed) the way the real SDK does

Tests control it with ``modal._standin`` (in a test process: ``tests.modal_standin.modal._standin``):
``simulate_timeout``, ``simulate_termination``, ``create_secret``, ``cleanup``.

docs/modal-sdk.md says what is faithful here and what only the real SDK can show;
tests/unit/test_modal_contract.py keeps every name and signature here true to the installed SDK.
"""
