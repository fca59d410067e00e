"""The error a handler raises when it cannot handle an event."""

from __future__ import annotations


class HandlerError(Exception):
    """Why a plugin could not handle an event.

    The kind tells the router what to do next: a retryable error is retried as
    the route's delivery policy says (the sender is answered 502 with
    `Retry-After`), a fatal one goes straight to the dead-letter sink (answered
    422). The message ends up in the router's log and in the dead letter, so name
    the event and the problem.

    Raise one built with `HandlerError.retryable(message)` or
    `HandlerError.fatal(message)`::

        raise HandlerError.fatal(f"order event {event.id} has an empty orderId")
    """

    __slots__ = ("_retryable", "message")

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        #: The message, without the kind.
        self.message = str(message)
        self._retryable = bool(retryable)

    @classmethod
    def retryable(cls, message: str) -> "HandlerError":
        """A transient failure (a dependency is down, a limit was hit): the router
        may deliver the same event again later."""
        return cls(message, retryable=True)

    @classmethod
    def fatal(cls, message: str) -> "HandlerError":
        """A permanent failure (bad input, a broken invariant): delivering the same
        event again cannot help."""
        return cls(message, retryable=False)

    def is_retryable(self) -> bool:
        """Whether the router may deliver the event again."""
        return self._retryable

    @property
    def kind(self) -> str:
        """`"retryable"` or `"fatal"`, as the WIT variant names the cases."""
        return "retryable" if self._retryable else "fatal"

    def __str__(self) -> str:
        # The same text as the Rust SDK's Display, so logs read alike.
        return f"{self.kind}: {self.message}"

    def __repr__(self) -> str:
        return f"HandlerError.{self.kind}({self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HandlerError):
            return NotImplemented
        return (self._retryable, self.message) == (other._retryable, other.message)

    def __hash__(self) -> int:
        return hash((self._retryable, self.message))
