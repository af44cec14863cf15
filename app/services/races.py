"""What a change of a task does when a concurrent change of the same task got there first.

The loser sees it at a flush or at the commit: ``StaleDataError`` (the task row's version
is no longer the one this request read) or ``IntegrityError`` (version numbers are unique
per task; a task deleted meanwhile takes its rows' foreign key with it). Nothing of the
losing attempt was committed. Changes that commute (appends, removals) are made again on
the newer version; the others fail with 409; a caller that pinned the version it expected
(``expected=``, from ``If-Match``) gets 412 either way.

A change that lost once makes its next attempts holding its task's gate (one per task
in this process): many concurrent appends of one task then cost one lost round and one
adaptation each after it, instead of every loser adapting again at every commit (which
made 100 concurrent appends take minutes). A change that arrives while the gate is held
queues at it at once. Otherwise first attempts take no gate, so changes of one task
still race freely, and across processes the database's check decides."""

from __future__ import annotations

import functools
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from app.errors import Conflict, PreconditionFailed

Method = TypeVar("Method", bound=Callable[..., Any])


def conflicts_are_409(method: Method) -> Method:
    """A concurrent writer that got there first shows up at a flush or at the commit as a
    ``StaleDataError`` (the task's version is no longer the one this request read) or an
    ``IntegrityError`` (version numbers are unique per task; a task deleted meanwhile
    takes its rows' foreign key with it). The request fails whole with 409, to be retried
    (412 when the caller named the version it expected: that version is gone)."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (IntegrityError, StaleDataError) as error:
            if kwargs.get("expected") is not None:
                raise _changed_meanwhile(kwargs["expected"]) from error
            raise Conflict("the task was changed by a concurrent request; retry") from error

    return guarded  # type: ignore[return-value]


def _changed_meanwhile(expected: int) -> PreconditionFailed:
    return PreconditionFailed(f"the task was changed by a concurrent request after If-Match {expected} was checked; "
                              "read its current version and decide again")


REBASE_ATTEMPTS = 200
GATE_WAIT_S = 300.0


class _Gate:
    """One task's lock for attempts after a lost race (weakly held: gone with its last user)."""

    __slots__ = ("lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()


_GATES: weakref.WeakValueDictionary[str, _Gate] = weakref.WeakValueDictionary()
_GATES_LOCK = threading.Lock()


def _gate(task_id: str) -> _Gate:
    with _GATES_LOCK:
        gate = _GATES.get(task_id)
        if gate is None:
            gate = _GATES[task_id] = _Gate()
        return gate


def rebased_on_conflict(method: Method) -> Method:
    """For changes that commute (appends, removals): a concurrent writer that got there
    first rolls this attempt back and the change is made again on the newer version, up
    to ``REBASE_ATTEMPTS`` times (then 409). Nothing of a lost attempt was committed. With
    ``expected`` (a pinned version) there is no rebase: losing the race is 412."""

    @functools.wraps(method)
    def rebased(self: Any, *args: Any, **kwargs: Any) -> Any:
        task_id = str(kwargs.get("task_id", args[1] if len(args) > 1 else ""))
        gate: _Gate | None = None
        with _GATES_LOCK:
            queue = _GATES.get(task_id)
        if queue is not None and queue.lock.locked():
            # Losers of this task are queued: a first attempt now would only lose too. The
            # wait holds no pooled connection (many queued changes would exhaust the pool).
            self.uow.release()
            if queue.lock.acquire(timeout=GATE_WAIT_S):
                gate = queue
        try:
            for attempt in range(REBASE_ATTEMPTS):
                try:
                    return method(self, *args, **kwargs)
                except (IntegrityError, StaleDataError) as error:
                    self.uow.session.rollback()  # also gives the connection back while waiting
                    if kwargs.get("expected") is not None:
                        raise _changed_meanwhile(kwargs["expected"]) from error
                    self.rebasing = True
                    if gate is None:
                        gate = _gate(task_id)
                        if not gate.lock.acquire(timeout=GATE_WAIT_S):
                            gate = None
                            break
                    else:  # lost again, to another process or to a first attempt
                        time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
            raise Conflict("the task was changed by too many concurrent requests; retry")
        finally:
            self.rebasing = False
            if gate is not None:
                gate.lock.release()

    return rebased  # type: ignore[return-value]
