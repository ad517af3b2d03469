"""The error every part of the helper raises for a request it cannot carry out.

Apart from wire.py so that files.py, which the controller also loads before anything
else for a push (controller/local_walk.py), does not pull in the JSON codec with it.
"""


class RequestFailed(Exception):
    """A request the helper could not carry out; ``code`` and ``message`` go into the Error reply."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
