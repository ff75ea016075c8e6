"""Even shares of the keep-alive connections among the tracker's worker processes.

With SO_REUSEPORT (dosewise.supervisor) the kernel picks a worker for each new connection by
a hash of its addresses: a fair coin per connection, but for long-lived keep-alive
connections an uneven split stays for their whole life, and the busier worker queues replies
while the other idles. So each worker publishes how many connections it holds, in an array the
supervisor shares with all of them, and a worker holding more than its even share answers
`connection: close` (HTTP/1.1's own way to end a keep-alive connection after an answer):
the client opens a new connection, which the kernel places afresh, until the shares are even.
No request is refused or lost: the answer is whole, only the connection ends after it.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CLOSE = (b"connection", b"close")


def over_share(mine: int, counts: Sequence[int]) -> bool:
    """Whether a worker holding `mine` connections holds more than its even share of all
    the workers' (`counts`, its own among them), rounded up."""
    total = sum(counts)
    return mine > -(-total // len(counts))


class ConnectionShare:
    """This worker's slot in the array of every worker's open connections."""

    def __init__(self, counts: MutableSequence[int], slot: int) -> None:
        self._counts = counts
        self._slot = slot

    def publish(self, mine: int) -> None:
        self._counts[self._slot] = mine

    def should_close(self, mine: int) -> bool:
        """Publish `mine` and say whether one of this worker's connections should end."""
        self.publish(mine)
        return over_share(mine, self._counts[:])


class EvenConnections:
    """ASGI: `connection: close` on an HTTP answer while this worker holds more than its share;
    `open_connections` counts this worker's connections at that moment."""

    def __init__(
        self, app: ASGIApp, share: ConnectionShare, open_connections: Callable[[], int]
    ) -> None:
        self._app = app
        self._share = share
        self._open_connections = open_connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        # published as each request arrives too, not only as it is answered: the others'
        # figures are then fresh when a burst of new connections lands on several workers
        self._share.publish(self._open_connections())

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start" and self._share.should_close(
                self._open_connections()
            ):
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        await self._app(scope, receive, answer)
