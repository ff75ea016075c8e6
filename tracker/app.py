"""The tracker's HTTP face (FastAPI): Twilio's webhooks, e-mail confirm links, health, metrics.

Thin on purpose: each route parses, calls one use case of services.replies in a worker thread
(the store is synchronous) and renders. The clock is read here and handed to the use case.
Inbound SMS that arrive while the store is busy are handled together, in one transaction
(tracker.group_commit, services.replies.receive_sms_together).
Twilio's two webhooks, the hot path, are answered by a small ASGI layer (WebhookRoutes) ahead
of FastAPI's routing; their FastAPI routes remain for /openapi.json.

The twilio-dependent pieces (signature check, TwiML) come in as a TwilioWebhooks value from
the composition root (dosewise.cmd_tracker), because only the notifier package may import
twilio, even indirectly.

Webhooks are only believed when signed: X-Twilio-Signature must be Twilio's signature of
DOSEWISE_PUBLIC_URL + path (+ query) and the form, with TWILIO_AUTH_TOKEN. Without an auth
token nothing can be checked, so every webhook is refused with 403 (never accepted unsigned).

A verified webhook the database cannot take (it is away, full, or holds the rows too long) is
kept in the worker's spool (tracker.spool) when the tracker has one, answered 200, and
replayed once the database answers (tracker.replayer); so is one from a sender whose earlier
replies still wait there, to keep their order. /healthz says whether the database takes a
write; /readyz whether the tracker takes webhooks (the database does, or the spool has room).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from dosewise.settings import Settings
from reports.ports import AdherenceQueries
from services.admin_sessions import AdminStore
from services.health import DatabaseProbe, Health, check_database, check_health
from services.logs import error_line
from services.ports import StoreConflict, UnitOfWork
from services.replies import (
    HELD_UP_LOCK_WAIT_S,
    DeliveryStatus,
    InboundSms,
    LinkOutcome,
    SmsAnswer,
    confirm_by_link,
    confirm_link_preview,
    receive_sms_one_by_one,
    receive_sms_together,
    record_delivery_status,
)
from services.reply_ports import Outcome
from services.spool_replay import Kept, kept_answer
from store.errors import RefusedValue, StoreError
from tracker.admin import admin_router
from tracker.characters import ReadableCharacters
from tracker.group_commit import GroupCommit
from tracker.headers import SecurityHeaders
from tracker.limits import BodySizeLimit
from tracker.logs import mask_phone
from tracker.pages import (
    answer_page,
    link_page,
    reader_language,
    unavailable_page,
    unknown_link_page,
)
from tracker.replayer import SpoolReplayer
from tracker.spool import InboundSpool
from tracker.timeouts import BODY_TIMEOUT_S, BodyTimeout

Clock = Callable[[], datetime]
FormPairs = Sequence[tuple[str, str]]
UnitOfWorkFactory = Callable[[], UnitOfWork]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

T = TypeVar("T")

log = logging.getLogger("dosewise.tracker")

SIGNATURE_HEADER = "X-Twilio-Signature"
TWIML_CONTENT_TYPE = "application/xml"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 100  # Twilio sends about 20
# what the store can keep: a MessageSid is 34 characters, E.164 at most 16 with the "+"
_SID = re.compile(r"[A-Za-z0-9]{1,64}")
MAX_FROM_LENGTH = 32
MAX_TOKEN_LENGTH = 200
# inbound SMS handled together in one transaction at most (tracker.group_commit). Past a
# backlog, large batches drain it: under bench/webhook.py at 1,000 replies/s offered, 32 gave
# 1.59-1.70 CPU ms per reply in the closed loop against 1.72-1.78 for 8
MOST_REPLIES_PER_TRANSACTION = 32
# a batch of replies normally takes a few ms, a large one tens; one that runs longer waits on
# something (a row lock of another service's transaction), and the next replies get a lane
# of their own
SLOW_BATCH_S = 0.2
_LINK_ACTIONS: dict[str, Outcome] = {"taken": "taken", "skip": "skipped"}
_LINK_STATUS_CODES = {"recorded": 200, "used": 410, "expired": 410, "closed": 410, "unknown": 404}

_SMS_FORM = {
    "type": "object",
    "properties": {
        "MessageSid": {"type": "string"},
        "From": {"type": "string"},
        "To": {"type": "string"},
        # absent reads as empty, as a picture-only MMS: answered with the hint, stored
        "Body": {"type": "string"},
    },
    "required": ["MessageSid", "From"],
}
_CONFIRM_FORM = {
    "type": "object",
    "properties": {"action": {"type": "string", "enum": list(_LINK_ACTIONS)}},
    "required": ["action"],
}
_STATUS_FORM = {
    "type": "object",
    "properties": {
        "MessageSid": {"type": "string"},
        "MessageStatus": {"type": "string"},
        "ErrorCode": {"type": "string"},
    },
    "required": ["MessageSid", "MessageStatus"],
}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "a form that cannot be read"},
    403: {"description": "missing or wrong X-Twilio-Signature"},
    413: {"description": "request body over 64 KiB"},
    415: {"description": "not application/x-www-form-urlencoded"},
    503: {"description": "the database is unavailable and the spool full (or not kept)"},
}


@dataclass(frozen=True)
class TwilioWebhooks:
    """notifier.twilio_webhooks' functions: (auth token, URL, form, signature) -> valid?, and
    the TwiML answer for a text (None: no message)."""

    signature_is_valid: Callable[[str, str, FormPairs, str | None], bool]
    twiml_message: Callable[[str | None], str]


class Refused(Exception):
    """A request the tracker will not act on; rendered as a short plain-text answer."""

    def __init__(self, status: int, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.outcome = outcome
        self.detail = detail


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    webhooks: Counter
    sms_batches: Histogram
    spool: SpoolMetrics
    # set when the tracker runs as several worker processes (dosewise.supervisor): each
    # worker's counters are files there, and an exposition sums every worker's
    shared_directory: str | None = None

    @classmethod
    def create(cls) -> Metrics:
        # an own registry per app: several apps (tests) in one process do not collide
        registry = CollectorRegistry()
        webhooks = Counter(
            "dosewise_tracker_webhooks",
            "Webhook requests by route and outcome",
            ["route", "outcome"],
            registry=registry,
        )
        sms_batches = Histogram(
            "dosewise_tracker_sms_per_transaction",
            "Inbound SMS handled together in one transaction (group commit)",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=registry,
        )
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        return cls(registry, webhooks, sms_batches, SpoolMetrics.create(registry), shared)

    def exposition(self) -> bytes:
        if self.shared_directory is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=self.shared_directory)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker)


@dataclass(frozen=True)
class SpoolMetrics:
    """The database as the tracker sees it, and its spool: summed over live workers (depth),
    the worst of them (the oldest entry's age, the database down in any)."""

    database_up: Gauge
    depth: Gauge
    oldest_s: Gauge
    replayed: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SpoolMetrics:
        return cls(
            Gauge(
                "dosewise_tracker_database_up",
                "1 when the database took the last write (probe or replay), else 0",
                registry=registry,
                multiprocess_mode="livemin",
            ),
            Gauge(
                "dosewise_tracker_spool_depth",
                "Verified webhooks kept in the spool, not yet in the database",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            Gauge(
                "dosewise_tracker_spool_oldest_seconds",
                "How long the oldest webhook in the spool has waited (0: none waits)",
                registry=registry,
                multiprocess_mode="livemax",
            ),
            Counter(
                "dosewise_tracker_spool_replayed",
                "Kept webhooks put into the database, by route",
                ["route"],
                registry=registry,
            ),
        )

    def show(self, health: Health) -> None:
        self.database_up.set(1 if health.database_up else 0)
        spool = health.spool
        if spool is not None:
            self.depth.set(spool.depth)
            self.oldest_s.set(spool.oldest_s or 0.0)


class _ReadProbe:
    """A probe by a read, for an app given no DatabaseProbe."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    def check_writable(self) -> None:
        check_database(self._uow_factory())


def create_app(
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    twilio: TwilioWebhooks,
    queries: AdherenceQueries,
    lifespan: Lifespan | None = None,
    sms_lanes: int = 1,
    spool: InboundSpool | None = None,
    probe: DatabaseProbe | None = None,
    body_timeout_s: float = BODY_TIMEOUT_S,
    admin_store: AdminStore,
) -> FastAPI:
    """`admin_store`: the dashboard's sessions, sign-in limits and audit log.

    `sms_lanes`: transactions of inbound SMS at once at most (tracker.group_commit), fewer
    than the threads and pooled connections the store has, so that the other routes find one;
    past the first, only while the running ones are slow (SLOW_BATCH_S).

    `spool`: where verified webhooks go while the database cannot take them (opened and
    replayed while the app runs); without one they are answered 503. `probe`: the database
    write check of /healthz (without one, a read). `body_timeout_s`: how long a request's
    body may take to arrive (tracker.timeouts)."""
    metrics = Metrics.create()
    replayer = None
    if spool is not None:
        replayer = SpoolReplayer(
            spool,
            uow_factory,
            clock,
            settings.public_url,
            lambda entry, _outcome: metrics.spool.replayed.labels(f"/twilio/{entry.kind}").inc(),
        )
    app = TrackerApp(
        title="dosewise tracker",
        description="Twilio webhooks, e-mail confirm links, health and metrics.",
        version="1",
        lifespan=_with_replayer(lifespan, replayer),
    )
    # the metric counts the transactions that committed, so a batch that fell back to its
    # replies alone counts as that many
    committed = metrics.sms_batches.observe
    sms = GroupCommit[tuple[InboundSms, datetime], SmsAnswer](
        lambda replies: receive_sms_together(uow_factory, replies, committed),
        lanes=sms_lanes,
        most=MOST_REPLIES_PER_TRANSACTION,
        patience=SLOW_BATCH_S,
    )
    # replies a row lock held up past the batches' short waits: one at a time, apart, so
    # that however many are held up they take one thread and connection, not all of them
    held_up = GroupCommit[tuple[InboundSms, datetime], SmsAnswer](
        lambda replies: receive_sms_one_by_one(
            uow_factory, replies, HELD_UP_LOCK_WAIT_S, committed
        ),
        lanes=1,
        most=1,
    )
    webhooks = _webhooks(
        settings, twilio, SmsLanes(sms, held_up), uow_factory, clock, metrics, replayer
    )
    app.front = SecurityHeaders(
        BodyTimeout(
            BodySizeLimit(
                ReadableCharacters(
                    WebhookRoutes(app.behind_the_webhooks, webhooks),
                    own_checks=(*webhooks, "/confirm"),
                )
            ),
            body_timeout_s,
        )
    )
    _add_error_handlers(app)
    _document_webhooks(app, webhooks)
    _add_confirm_link(app, uow_factory, clock)
    _add_operations(app, probe or _ReadProbe(uow_factory), replayer, clock, metrics)
    app.include_router(admin_router(settings, clock, queries, admin_store))
    return app


def _with_replayer(lifespan: Lifespan | None, replayer: SpoolReplayer | None) -> Lifespan | None:
    """The caller's lifespan, and inside it (its executors set up) the spool opened and its
    replayer running; the spool is closed when the app stops."""
    if replayer is None:
        return lifespan

    @asynccontextmanager
    async def with_replayer(app: FastAPI) -> AsyncIterator[None]:
        async with _entered(lifespan, app):
            replayer.spool.open()
            stop = asyncio.Event()
            task = asyncio.create_task(replayer.run(stop))
            try:
                yield
            finally:
                stop.set()
                await task
                replayer.spool.close()

    return with_replayer


@asynccontextmanager
async def _entered(lifespan: Lifespan | None, app: FastAPI) -> AsyncIterator[None]:
    if lifespan is None:
        yield
        return
    async with lifespan(app):
        yield


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StoreError)
    async def store_down(request: Request, error: StoreError) -> Response:
        if isinstance(error, RefusedValue):  # bad input, not an outage
            log.info("%s %s: %s", request.method, request.url.path, error)
            return PlainTextResponse(f"{error}\n", status_code=400)
        log.error("%s %s: %s", request.method, request.url.path, error)
        return PlainTextResponse("the database is unavailable\n", status_code=503)


class TrackerApp(FastAPI):
    """FastAPI behind `front`: the body-size cap and Twilio's webhooks (WebhookRoutes), which
    so skip FastAPI's own layers too (error, telemetry and body-limit middleware, routing):
    about 2% of the tracker's CPU per webhook (935-947 against 920 µs, one request at a time).
    Every other request, and the lifespan, reaches FastAPI as usual."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await self.front(scope, receive, send)

    async def behind_the_webhooks(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


@dataclass(frozen=True)
class SmsLanes:
    """Inbound SMS's two group commits: batches, and the replies a row lock held up."""

    batches: GroupCommit[tuple[InboundSms, datetime], SmsAnswer]
    held_up: GroupCommit[tuple[InboundSms, datetime], SmsAnswer]


@dataclass(frozen=True)
class Incoming:
    """What a webhook reads of its request: the path, query, two headers and the body."""

    path: str
    query: str
    content_type: str
    signature: str | None
    body: bytes

    @classmethod
    def from_scope(cls, scope: Scope, body: bytes) -> Incoming:
        content_type, signature = "", None
        for name, value in scope["headers"]:
            if name == b"content-type" and not content_type:
                content_type = value.decode("latin-1")
            elif name == b"x-twilio-signature" and signature is None:
                signature = value.decode("latin-1")
        return cls(
            scope["path"], scope["query_string"].decode("latin-1"), content_type, signature, body
        )


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: bytes
    text: str


Webhook = Callable[[Incoming], Awaitable[Answer]]


class WebhookRoutes:
    """ASGI: POST /twilio/sms and /twilio/status answered here, ahead of FastAPI's routing,
    dependency solving and response classes, which cost as much CPU per webhook as the
    rest of the tracker's Python (profiled under bench/webhook.py). Inside BodySizeLimit, so
    the 64 KiB cap holds; the FastAPI routes of the same paths stay for /openapi.json and
    give the same answers through the same functions."""

    def __init__(self, app: ASGIApp, webhooks: Mapping[str, Webhook]) -> None:
        self.app = app
        self.webhooks = webhooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        webhook = None
        if scope["type"] == "http" and scope["method"] == "POST":
            webhook = self.webhooks.get(scope["path"])
        if webhook is None:
            await self.app(scope, receive, send)
            return
        body = await _whole_body(receive)
        if body is None:
            return  # the client has gone
        answer = await webhook(Incoming.from_scope(scope, body))
        data = answer.text.encode()
        headers = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(data)).encode()),
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


async def _whole_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _in_thread(function: Callable[..., T], *arguments: Any) -> T:
    """function(*arguments) in the event loop's default executor: the webhooks' use cases
    (the store is synchronous). Cheaper per call than anyio's worker threads (no capacity
    limiter or cancel scope); dosewise.cmd_tracker sizes the executor to the database pool."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *arguments)


_TWIML = TWIML_CONTENT_TYPE.encode()
_PLAIN_TEXT = b"text/plain; charset=utf-8"


def _webhooks(
    settings: Settings,
    twilio: TwilioWebhooks,
    sms_lanes: SmsLanes,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    metrics: Metrics,
    replayer: SpoolReplayer | None = None,
) -> dict[str, Webhook]:
    """The two webhooks by path; each answers every request, refusals and 503 included."""
    keeping = _Keeping(replayer, metrics)

    def refusals(route: str, handle: Webhook) -> Webhook:
        async def answer(incoming: Incoming) -> Answer:
            try:
                return await handle(incoming)
            except Refused as error:
                metrics.webhooks.labels(route, error.outcome).inc()
                return Answer(error.status, _PLAIN_TEXT, error.detail + "\n")
            except RefusedValue as error:  # bad input, not an outage
                metrics.webhooks.labels(route, "bad_request").inc()
                return Answer(400, _PLAIN_TEXT, f"{error}\n")
            except StoreError as error:
                log.error("POST %s: %s", route, error_line(error))
                metrics.webhooks.labels(route, "unavailable").inc()
                return Answer(503, _PLAIN_TEXT, "the database is unavailable\n")

        return answer

    async def inbound_sms(incoming: Incoming) -> Answer:
        form = _signed_form(incoming, settings, twilio)
        sms = InboundSms(
            provider_id=_sid(form),
            from_number=_bounded(form, "From", MAX_FROM_LENGTH),
            body=form.get("Body", ""),
        )
        now = clock()
        failure: StoreError | None = None
        if not keeping.bypasses_database(sender=sms.from_number):
            try:
                try:
                    answer = await sms_lanes.batches((sms, now))
                except StoreConflict:  # held up by a row lock: apart, waiting longer
                    answer = await sms_lanes.held_up((sms, now))
            except RefusedValue:
                raise
            except StoreError as error:
                failure = keeping.may_keep(error)
            else:
                return _answered(sms, answer, metrics, twilio)
        await keeping.keep("/twilio/sms", Kept(("", 0), now, sms=sms), failure)
        log.info("sms %s from %s: kept in the spool", sms.provider_id, mask_phone(sms.from_number))
        return Answer(200, _TWIML, twilio.twiml_message(kept_answer(sms.body, settings.language)))

    async def delivery_status(incoming: Incoming) -> Answer:
        form = _signed_form(incoming, settings, twilio)
        report = DeliveryStatus(
            provider_id=_sid(form),
            status=_bounded(form, "MessageStatus", 32),
            error_code=_error_code(form.get("ErrorCode")),
        )
        now = clock()
        failure: StoreError | None = None
        if not keeping.bypasses_database(message=report.provider_id):
            try:
                outcome = await _in_thread(
                    record_delivery_status, uow_factory(), report, now, settings.public_url
                )
            except RefusedValue:
                raise
            except StoreError as error:
                failure = keeping.may_keep(error)
            else:
                return _recorded(report, outcome, metrics)
        await keeping.keep("/twilio/status", Kept(("", 0), now, status=report), failure)
        log.info("status %s: %s (kept in the spool)", report.provider_id, report.status)
        return Answer(200, _PLAIN_TEXT, "kept\n")

    return {
        "/twilio/sms": refusals("/twilio/sms", inbound_sms),
        "/twilio/status": refusals("/twilio/status", delivery_status),
    }


def _answered(
    sms: InboundSms, answer: SmsAnswer, metrics: Metrics, twilio: TwilioWebhooks
) -> Answer:
    outcome = "duplicate" if answer.duplicate else answer.kind
    metrics.webhooks.labels("/twilio/sms", outcome).inc()
    log.info("sms %s from %s: %s", sms.provider_id, mask_phone(sms.from_number), outcome)
    return Answer(200, _TWIML, twilio.twiml_message(answer.text))


def _recorded(report: DeliveryStatus, outcome: str, metrics: Metrics) -> Answer:
    metrics.webhooks.labels("/twilio/status", outcome).inc()
    log.info("status %s: %s (%s)", report.provider_id, report.status, outcome)
    return Answer(200, _PLAIN_TEXT, f"{outcome}\n")


@dataclass(frozen=True)
class _Keeping:
    """The webhooks' use of the spool (when the app has one)."""

    replayer: SpoolReplayer | None
    metrics: Metrics

    def bypasses_database(self, *, sender: str = "", message: str = "") -> bool:
        """Whether a webhook goes to the spool without trying the database: the replayer
        finds it away, or an earlier webhook of the same sender (or message) waits there."""
        if self.replayer is None:
            return False
        spool = self.replayer.spool
        return (
            spool.database_away
            or (bool(sender) and spool.holds_sender(sender))
            or (bool(message) and spool.holds_message(message))
        )

    def may_keep(self, error: StoreError) -> StoreError:
        """The failure, when there is a spool to keep the webhook in; raised when not."""
        if self.replayer is None:
            raise error
        return error

    async def keep(self, route: str, entry: Kept, failure: StoreError | None) -> None:
        """`entry` in the spool (fsynced), or StoreError (503) when it cannot be kept."""
        if failure is not None:
            log.warning("POST %s: %s; keeping it in the spool", route, error_line(failure))
        if self.replayer is None:
            raise failure or StoreError("no spool")
        spool = self.replayer.spool
        loop = asyncio.get_running_loop()
        try:
            accepted = await loop.run_in_executor(
                spool.executor, spool.keep, entry, entry.received_at
            )
        except OSError as error:
            log.error("POST %s: the spool cannot keep it: %s", route, error)
            raise StoreError("the database is unavailable and the spool cannot keep it") from None
        if not accepted:
            log.error("POST %s: the spool is past its bound (size or age); refused", route)
            raise StoreError("the database is unavailable and the spool is full")
        self.replayer.wake()
        self.metrics.webhooks.labels(route, "spooled").inc()


def _document_webhooks(app: FastAPI, webhooks: Mapping[str, Webhook]) -> None:
    """The webhooks as FastAPI routes: their OpenAPI description, and the same answers for a
    request that reaches them (WebhookRoutes normally answers first)."""

    async def through(request: Request) -> Response:
        answer = await webhooks[request.url.path](
            Incoming(
                request.url.path,
                request.url.query,
                request.headers.get("content-type", ""),
                request.headers.get(SIGNATURE_HEADER),
                await request.body(),
            )
        )
        return Response(answer.text, answer.status, media_type=answer.content_type.decode())

    app.add_api_route(
        "/twilio/sms",
        through,
        methods=["POST"],
        response_class=Response,
        responses={200: {"content": {TWIML_CONTENT_TYPE: {}}}, **_REFUSALS},
        openapi_extra=_form_body(_SMS_FORM),
        summary="Twilio's inbound-SMS webhook; answers TwiML",
        name="inbound_sms",
    )
    app.add_api_route(
        "/twilio/status",
        through,
        methods=["POST"],
        response_class=PlainTextResponse,
        responses=_REFUSALS,
        openapi_extra=_form_body(_STATUS_FORM),
        summary="Twilio's delivery status callback",
        name="delivery_status",
    )


def _add_confirm_link(app: FastAPI, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
    """GET shows the dose and its two buttons and records nothing (mail scanners open the
    links of the e-mails they pass); the buttons' POST records it. An e-mail's skip link
    (`?action=skip`) opens the same page with Skip pre-selected."""

    @app.get(
        "/confirm/{token}",
        response_class=HTMLResponse,
        responses={404: {"description": "unknown link"}, 410: {"description": "used or expired"}},
        summary="A reminder e-mail's confirm link: the dose and its buttons; records nothing",
    )
    async def confirm_page(request: Request, token: str, action: str = "taken") -> HTMLResponse:
        # a person opens this page: an altered link gets the page, never a JSON error; two
        # actions (skip and taken) would be a guess either way
        actions = request.query_params.getlist("action")
        if len(token) > MAX_TOKEN_LENGTH or action not in _LINK_ACTIONS or len(actions) > 1:
            return _unknown_link(request)
        try:
            found = await run_in_threadpool(confirm_link_preview, uow_factory(), token, clock())
        except StoreError as error:
            log.error("confirm link: %s", error)
            return _unavailable(request)
        if found.status == "open":
            return HTMLResponse(answer_page(token, found.text, action, found.language))
        return _link_outcome(request, found)

    @app.post(
        "/confirm/{token}",
        response_class=HTMLResponse,
        responses={
            404: {"description": "unknown link or action"},
            410: {"description": "used or expired"},
        },
        openapi_extra=_form_body(_CONFIRM_FORM),
        summary="The confirm page's buttons: records the dose once (single-use, expiring)",
    )
    async def confirm(request: Request, token: str) -> HTMLResponse:
        try:
            pairs = _form_pairs(await request.body())
        except Refused:
            return _unknown_link(request)
        actions = [value for name, value in pairs if name == "action"]
        if len(token) > MAX_TOKEN_LENGTH or len(actions) != 1 or actions[0] not in _LINK_ACTIONS:
            return _unknown_link(request)
        outcome: Outcome = _LINK_ACTIONS[actions[0]]
        try:
            result = await run_in_threadpool(
                confirm_by_link, uow_factory(), token, outcome, clock()
            )
        except StoreError as error:
            log.error("confirm link: %s", error)
            return _unavailable(request)
        return _link_outcome(request, result)

    @app.get("/confirm/", include_in_schema=False)
    @app.get("/confirm", include_in_schema=False)
    async def no_token(request: Request) -> HTMLResponse:
        return _unknown_link(request)


def _link_outcome(request: Request, result: LinkOutcome) -> HTMLResponse:
    if result.status == "unknown":
        return _unknown_link(request)  # no person: the browser's language
    return HTMLResponse(
        link_page(result.status, result.text, result.language),  # the person's language
        _LINK_STATUS_CODES[result.status],
    )


def _unavailable(request: Request) -> HTMLResponse:
    reader = reader_language(request.headers.get("accept-language"))
    return HTMLResponse(unavailable_page(reader), 503)


def _unknown_link(request: Request) -> HTMLResponse:
    """A link dosewise did not send: no person to know the language of, so the browser's."""
    reader = reader_language(request.headers.get("accept-language"))
    return HTMLResponse(unknown_link_page(reader), 404)


def _add_operations(
    app: FastAPI,
    probe: DatabaseProbe,
    replayer: SpoolReplayer | None,
    clock: Clock,
    metrics: Metrics,
) -> None:
    async def health() -> Health:
        spool = None if replayer is None else replayer.state(clock())
        found = await run_in_threadpool(check_health, probe, spool)
        if replayer is not None and found.database_error is None and not found.database_up:
            # the probe writes but replays were failing: a replay now says which is current
            await replayer.try_now()
            found = Health(None, replayer.state(clock()))
        if found.reason is not None:
            log.warning("health check: the database is down: %s", found.reason)
        metrics.spool.show(found)
        return found

    async def healthz() -> JSONResponse:
        found = await health()
        return JSONResponse(found.as_dict(), 200 if found.healthy else 503)

    async def readyz() -> JSONResponse:
        found = await health()
        return JSONResponse(found.as_dict(readiness=True), 200 if found.ready else 503)

    # HEAD too: load balancers' and uptime checkers' probe; a route each, as one route with
    # both methods gives both operations one OpenAPI operationId (FastAPI warns of it)
    for method in ("GET", "HEAD"):
        app.add_api_route(
            "/healthz",
            healthz,
            methods=[method],
            operation_id=f"healthz_{method.lower()}",
            summary="Whether the database takes a write (tried twice), and the spool's depth",
            responses={503: {"description": "the database cannot be written"}},
        )
        app.add_api_route(
            "/readyz",
            readyz,
            methods=[method],
            operation_id=f"readyz_{method.lower()}",
            summary="Whether a webhook sent now is kept: by the database, or else the spool",
            responses={503: {"description": "neither the database nor the spool takes it"}},
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        await health()  # the database and spool gauges as of this scrape
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


# -- reading webhooks ------------------------------------------------------------------------


def _signed_form(incoming: Incoming, settings: Settings, twilio: TwilioWebhooks) -> dict[str, str]:
    """The form, once its signature checks out; Refused (400/403/415) otherwise."""
    content_type = incoming.content_type.partition(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise Refused(415, "unsupported_media_type", f"send {FORM_CONTENT_TYPE}")
    pairs = _form_pairs(incoming.body)
    url = settings.public_url + incoming.path
    if incoming.query:
        url += "?" + incoming.query
    token = settings.twilio_auth_token
    if token is None or not twilio.signature_is_valid(token, url, pairs, incoming.signature):
        raise Refused(403, "forbidden", "X-Twilio-Signature does not match")
    form = dict(pairs)
    # Twilio sends each of these once; two Bodies (TAKEN and SKIP) would be a guess either way
    counts = collections.Counter(name for name, _ in pairs)
    repeated = sorted(name for name in _READ_FIELDS if counts[name] > 1)
    if repeated:
        raise Refused(400, "bad_request", f"{', '.join(repeated)} given more than once")
    return form


_READ_FIELDS = ("MessageSid", "From", "Body", "MessageStatus", "ErrorCode")


def _form_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "bad_request", "the form cannot be read") from None
    # a NUL cannot be stored (PostgreSQL text) and is never in an SMS Twilio relays
    if any("\x00" in name or "\x00" in value for name, value in pairs):
        raise Refused(400, "bad_request", "the form holds a NUL character")
    return pairs


def _sid(form: dict[str, str]) -> str:
    sid = form.get("MessageSid", "")
    if not _SID.fullmatch(sid):
        raise Refused(400, "bad_request", "MessageSid is missing or malformed")
    return sid


def _bounded(form: dict[str, str], name: str, limit: int) -> str:
    value = form.get(name, "").strip()
    if not value or len(value) > limit:
        raise Refused(400, "bad_request", f"{name} is missing or too long")
    # these go into the log: a line break in them could forge a log line
    if not value.isprintable():
        raise Refused(400, "bad_request", f"{name} holds a control character")
    return value


def _error_code(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _form_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {FORM_CONTENT_TYPE: {"schema": schema}},
        }
    }
