"""mngr's operations as plain functions: a typed request in, a typed result out.

Each module holds one operation or one family of them (``agents``: stop, start, destroy;
``copy``: clone, migrate; ``create``; ``message``; ``exec``; ``gc``). The CLI parses its
arguments into a request, calls the function and prints the result; plugins and scripts
call the same functions. Nothing here prints or exits.

Three pieces are shared by every operation, so that no path skips them:

- ``lookup.find_agents``: the agents a request names;
- ``lifecycle.Lifecycle``: the plugins' lifecycle events and mngr's bookkeeping (hosts
  remembered, the completion record, hosts removed with their last agent);
- ``mngr.controller.fanout``: the bounded parallel fan-out, with a time limit per agent
  or host, that reports each failure and does the rest (the listings and name lookups
  below use it too).
"""
