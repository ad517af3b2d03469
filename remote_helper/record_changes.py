"""Changes to an agent that leave what it is doing alone: a new name, its labels, archived
or not (archiving stops it first).

Each runs under the agent's named lock, as start, stop and destroy do (agents.py), so a
change racing one of those is done wholly before or wholly after it. A rename also holds
the new name's lock (a create of that name waits), both names' message locks (a message
under way is delivered first; one that waited finds the agent renamed) and the state
view lock (agent_records.VIEW_LOCK: no listing sees the record renamed without its
session).
"""

import contextlib
import os

from . import agent_records, agents, processes, state, tmux
from .wire import RequestFailed


def rename_agent(name, new_name):
    agent_records.check_name(name)
    agent_records.check_name(new_name)
    if new_name == name:
        raise RequestFailed("invalid", "agent %r already has that name" % name)
    first, second = sorted((name, new_name))  # one order for every rename: no deadlock
    with contextlib.ExitStack() as held:
        for lock in ("agent-" + first, "agent-" + second, "message-" + first, "message-" + second):
            held.enter_context(state.named_lock(lock))
        agent_id, record = agent_records.require(name)
        if agent_records.find(new_name)[1] is not None:
            raise RequestFailed("exists", "an agent named %r already exists on this host" % new_name)
        session, new_session = tmux.session_name(name), tmux.session_name(new_name)
        if tmux.has_session(new_session):
            raise RequestFailed(
                "exists", "tmux session %s already exists on this host without an agent record" % new_session)
        directory = state.agent_dir(agent_id)
        record_path = os.path.join(directory, "record.json")
        renamed = dict(record, name=new_name)
        with state.named_lock(agent_records.VIEW_LOCK):
            state.atomic_write_json(record_path, renamed)
            try:
                tmux.rename_session(session, new_session)
            except BaseException:
                state.atomic_write_json(record_path, record)
                raise
        _rename_in_launch(directory, new_name)
        state.append_event(os.path.join(directory, "events.jsonl"), "renamed", old_name=name, new_name=new_name)
        return agents.agent_info_now(renamed)


def _rename_in_launch(directory, new_name):
    """What ``mngr exec`` runs with (the launch's environment) names the agent as it is
    called now; the running process keeps the name it started with until its next start."""
    path = os.path.join(directory, "launch.json")
    try:
        launch = state.read_json(path)
    except (OSError, ValueError):
        return
    if isinstance(launch, dict) and isinstance(launch.get("env"), dict):
        launch["env"]["MNGR_AGENT_NAME"] = new_name
        state.atomic_write_json(path, launch)


def set_labels(name, add, remove):
    """Add (or change) the labels ``add``, then drop the keys ``remove``."""
    agent_records.check_name(name)
    if not add and not remove:
        raise RequestFailed("invalid", "SetLabels: no label to add or remove")
    both = sorted(set(add) & set(remove))
    if both:
        raise RequestFailed("invalid", "label %r both added and removed" % both[0])
    with state.named_lock("agent-" + name):
        agent_id, record = agent_records.require(name)
        labels = dict(record.get("labels") or {})
        labels.update(add)
        for key in remove:
            labels.pop(key, None)
        if labels != (record.get("labels") or {}):
            record["labels"] = labels
            directory = state.agent_dir(agent_id)
            state.atomic_write_json(os.path.join(directory, "record.json"), record)
            state.append_event(os.path.join(directory, "events.jsonl"), "labels_changed",
                               added=dict(add), removed=sorted(remove))
        return agents.agent_info_now(record)


def set_archived(name, archived, spare=(), grace=processes.TERM_GRACE_SECONDS):
    """Archive the agent (stopped first if it runs) or unarchive it (it stays stopped)."""
    agent_records.check_name(name)
    with state.named_lock("agent-" + name):
        agent_id, record = agent_records.require(name)
        if archived and tmux.has_session(tmux.session_name(name)):
            agents.stop_locked(agent_id, record, spare, grace)
        if (record.get("archived") is True) != archived:
            if archived:
                record["archived"] = True
            else:
                record.pop("archived", None)
            directory = state.agent_dir(agent_id)
            state.atomic_write_json(os.path.join(directory, "record.json"), record)
            state.append_event(os.path.join(directory, "events.jsonl"), "archived" if archived else "unarchived")
        return agents.agent_info_now(record)
