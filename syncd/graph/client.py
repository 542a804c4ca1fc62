"""The msgraph-sdk adapter: raw-JSON GETs, paging, ``$batch``, retries, concurrency and counters.

Requests go through msgraph-sdk's request adapter (``BaseGraphRequestAdapter``) and its
``AzureIdentityAuthenticationProvider``, so authentication, the Graph middleware and the SDK's
HTTP client are the SDK's own.  Three things are done differently, each for a measured reason:

* **Bodies are taken raw.**  A :class:`~kiota_abstractions.native_response_handler.NativeResponseHandler`
  hands back the HTTP response; syncd reads status, headers and bytes itself and decodes the JSON
  with :mod:`syncd.graph.decode`, because typed models cost ~5 ms per object.
* **The SDK's RetryHandler is left out** of the middleware: it cannot parse the fractional
  ``Retry-After`` Graph sends (``2.128``) and adds seconds of jitter.
  :class:`~syncd.graph.retry.RetryPolicy` retries 429, 502, 503, 504 and connection errors,
  honouring ``Retry-After`` (capped), otherwise backing off exponentially; 400, 401, 403 and 404
  are never retried.
* **``$batch`` is a plain POST of JSON**, because the SDK's ``BatchRequestContent`` sends absolute
  URLs and drops response bodies.  Each item has its own status and headers: items that come back
  429, 5xx or 424 (a failed dependency) are sent again on their own after their own
  ``Retry-After``; the answers already received are kept whatever happens to a later POST.

Concurrency is bounded by ``graph.max_concurrency`` in-flight requests (an ``asyncio.Semaphore``);
a request waiting out a ``Retry-After`` does not hold a slot.  Every HTTP request, throttled answer
and retry is counted in :class:`GraphStats`.

The SDK is imported when the first client is built, not with this module: commands that never
talk to Graph (``plan --from-snapshot``, ``errors``) start a third of a second sooner.

A final failure is raised as a :class:`~syncd.errors.GraphError` classified by
:mod:`syncd.graph.classify`; no connection after every retry is GRAPH_UNAVAILABLE, a credential
that yields no token GRAPH_AUTH.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
import ssl
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

from ..cancel import check
from ..config import GraphConfig
from ..errors import ConfigError, GraphError
from ..model import user_properties
from .auth import LOOPBACK_HOSTS, build_credential, close_credential, graph_scope
from .classify import graph_error, is_fatal, path_of
from .decode import BadResponse, BatchItemResponse, decode_batch_response, decode_page, load_object
from .retry import BATCH_RETRYABLE_STATUSES, RETRYABLE_STATUSES, RetryPolicy, parse_retry_after

log = logging.getLogger("syncd.graph")

PAGE_SIZE = 999
"""The largest ``$top`` Graph accepts for users, groups, members and appRoleAssignedTo."""
BATCH_SIZE = 20
"""Graph executes at most 20 requests per JSON ``$batch``."""
MAX_PAGES = 100_000
"""More pages than any directory collection can have (about 100 million objects at 999 a page)."""

CANCEL_POLL_SECONDS = 0.05
"""How often a request in flight or a retry wait looks at the cancel event."""

Sleep = Callable[[float], Awaitable[None]]


# --------------------------------------------------------------------------- counters and answers


@dataclass(slots=True)
class GraphStats:
    """Counters for metrics: HTTP requests sent, 429 answers received (including items inside a
    ``$batch``), and requests sent again after a retryable failure."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    batch_items: int = 0
    """GETs sent inside ``$batch`` requests (each also counts toward Graph's throttling limits)."""


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer: status, headers (lower-case names) and the raw body."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(slots=True)
class BatchResult:
    """The final answer for one GET sent through ``$batch``: a decoded JSON body or an error."""

    url: str
    status: int
    body: Any = None
    error: GraphError | None = None


# --------------------------------------------------------------------------- the client


@dataclass(slots=True)
class _Pending:
    """A ``$batch`` item still waiting for a final answer, and how often it was sent again."""

    url: str
    attempts: int = 0


class GraphClient:
    """One Graph session: the SDK request adapter, the retry policy, the semaphore and the counters.

    Use it as an async context manager (``async with GraphClient(graph) as client``); on exit the
    HTTP connections and the credential are closed.  Once ``cancel`` is set, requests in flight,
    the next request and any retry wait raise :class:`~syncd.cancel.Cancelled`.
    """

    def __init__(
        self,
        graph: GraphConfig,
        *,
        credential: Any = None,
        stats: GraphStats | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.graph = graph
        self.cancel = cancel
        self.base_url = graph.base_url.rstrip("/")
        self.stats = stats if stats is not None else GraphStats()
        self.retry = retry if retry is not None else RetryPolicy(max_retries=graph.max_retries)
        self._sleep: Sleep = sleep if sleep is not None else asyncio.sleep
        self._owns_credential = credential is None
        self.credential = credential if credential is not None else build_credential(graph)
        self.scope = graph_scope(graph)
        self._semaphore = asyncio.Semaphore(max(1, graph.max_concurrency))
        self.user_fields = ",".join(user_properties(graph.extra_user_properties))
        """The user properties every read of users selects: the registry's, and those scoping rules test."""
        self._http = _http_client(graph)
        self._adapter = _request_adapter(self.base_url, self.credential, self.scope, self._http)

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()
        if self._owns_credential:
            await close_credential(self.credential)

    def absolute(self, path_or_url: str) -> str:
        """An absolute URL for a path relative to ``graph.base_url``.

        An absolute URL (a next link) must be of the configured Graph origin - scheme, host and
        port - and below its version path: the token goes nowhere else, and no answer from
        elsewhere is trusted.
        """
        if "://" not in path_or_url:
            return self.base_url + "/" + path_or_url.lstrip("/")
        if not same_origin(path_or_url, self.base_url):
            raise GraphError(
                f"Graph pointed to {_origin_text(path_or_url)}, outside the configured Graph "
                f"{_origin_text(self.base_url)}; syncd sends its token and trusts answers only there",
                code="GRAPH_BAD_RESPONSE",
            )
        return path_or_url

    # ------------------------------------------------------------------ one HTTP exchange

    async def send(
        self, method: str, url: str, *, content: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send one request through the SDK adapter (no retry) and return the raw answer.

        The ``NativeResponseHandler`` makes the adapter hand back the HTTP response as it came,
        whatever its status, so errors are classified here and the body is never deserialized
        into typed models.
        """
        from kiota_abstractions.method import Method
        from kiota_abstractions.native_response_handler import NativeResponseHandler
        from kiota_abstractions.request_information import RequestInformation
        from kiota_http.middleware.options import ResponseHandlerOption

        check(self.cancel)
        info = RequestInformation(Method(method))
        info.url = self.absolute(url)
        info.headers.try_add("Accept", "application/json")
        for name, value in (headers or {}).items():
            info.headers.try_add(name, value)
        if content is not None:
            info.set_stream_content(content, "application/json")
        info.add_request_options([ResponseHandlerOption(NativeResponseHandler())])
        async with self._semaphore:
            check(self.cancel)  # a request that waited for a slot is not sent after a stop either
            self.stats.requests += 1
            answer: httpx.Response = await self._unless_cancelled(
                self._adapter.send_primitive_async(info, "bytes", None)
            )
        answer_headers = {key.lower(): value for key, value in answer.headers.items()}
        return Response(answer.status_code, answer_headers, answer.content)

    # ------------------------------------------------------------------ retrying reads

    async def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send a request, retrying throttling, 5xx and connection failures per :class:`RetryPolicy`.

        Returns the successful (2xx) answer; raises :class:`GraphError` otherwise.
        """
        path = path_of(url)
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self.send(method, url, content=content, headers=headers)
            except httpx.TransportError as error:
                failure = GraphError(
                    f"{what}: cannot reach Graph at {self.base_url}: {_describe(error)}",
                    code="GRAPH_UNAVAILABLE",
                )
            except (ServiceRequestError, ServiceResponseError) as error:
                failure = GraphError(f"{what}: cannot obtain a token: {_first_line(error)}", code="GRAPH_UNAVAILABLE")
            except ClientAuthenticationError as error:
                raise GraphError(f"{what}: no access token: {_first_line(error)}", code="GRAPH_AUTH") from None
            else:
                if 200 <= response.status < 300:
                    return response
                failure = graph_error(response.status, response.content, what, path, retries=attempt)
                if response.status == 429:
                    self.stats.throttled += 1
                if response.status not in RETRYABLE_STATUSES:
                    raise failure
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt >= self.retry.max_retries:
                raise failure
            wait = self.retry.delay(attempt, retry_after)
            log.debug("%s: %s; retrying in %.3fs", what, failure.message, wait)
            attempt += 1
            self.stats.retries += 1
            await self._wait(wait)

    async def _unless_cancelled(self, request: Awaitable[Any]) -> Any:
        """Await ``request``; once ``cancel`` is set, cancel it (asyncio's own, cooperative way) and raise
        :class:`~syncd.cancel.Cancelled`, so that a slow answer does not hold up a stop."""
        if self.cancel is None:
            return await request
        task = asyncio.ensure_future(request)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=CANCEL_POLL_SECONDS)
                if done:
                    return task.result()
                check(self.cancel)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _wait(self, seconds: float) -> None:
        """Wait before a retry; with ``cancel``, in short steps so that a stop is not kept waiting."""
        if self.cancel is None:
            await self._sleep(seconds)
            return
        remaining = seconds
        while remaining > 0:
            check(self.cancel)
            step = min(remaining, CANCEL_POLL_SECONDS)
            await self._sleep(step)
            remaining -= step
        check(self.cancel)

    async def get_json(self, url: str, *, what: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET ``url`` and decode the JSON object it answers."""
        response = await self.request("GET", url, what=what, headers=headers)
        try:
            return load_object(response.content, what)
        except BadResponse as error:
            raise GraphError(str(error), code="GRAPH_BAD_RESPONSE", status=response.status) from None

    async def pages(
        self, url: str, *, what: str, headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Every page of a collection, following ``@odata.nextLink`` to the end (each page sent with
        ``headers``, if given).

        Graph's next links are absolute and opaque (they carry a ``$skiptoken``); they are sent
        as they are, and only to the configured Graph origin (:meth:`absolute`).  A listing that
        does not end is not an answer: a next link already followed, a page holding only objects
        already listed, or more than :data:`MAX_PAGES` pages fail the read (GRAPH_BAD_RESPONSE),
        so memory stays bounded.  Raises :class:`GraphError` on the first page that cannot be read.
        """
        next_url: str | None = url
        followed: set[str] = set()
        seen_ids: set[str] = set()
        while next_url is not None:
            followed.add(next_url)
            if len(followed) > MAX_PAGES:
                raise GraphError(
                    f"{what}: more than {MAX_PAGES} pages; the listing never ends", code="GRAPH_BAD_RESPONSE"
                )
            body = await self.get_json(next_url, what=what, headers=headers)
            try:
                page = decode_page(body, what)
            except BadResponse as error:
                raise GraphError(str(error), code="GRAPH_BAD_RESPONSE") from None
            ids = [item_id for item in page.items if isinstance(item_id := item.get("id"), str)]
            if ids and len(ids) == len(page.items) and seen_ids.issuperset(ids):
                raise GraphError(
                    f"{what}: a page lists again only objects already listed; the listing goes round in a circle",
                    code="GRAPH_BAD_RESPONSE",
                )
            seen_ids.update(ids)
            yield page.items
            next_url = page.next_link
            if next_url is not None and next_url in followed:
                raise GraphError(
                    f"{what}: Graph's @odata.nextLink leads back to a page already read; the listing never ends",
                    code="GRAPH_BAD_RESPONSE",
                )

    async def collect(self, url: str, *, what: str, headers: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """All items of a collection (see :meth:`pages`)."""
        items: list[dict[str, Any]] = []
        async for page in self.pages(url, what=what, headers=headers):
            items.extend(page)
        return items

    # ------------------------------------------------------------------ $batch

    async def batch_get(self, urls: Iterable[str], *, what: str) -> list[BatchResult]:
        """GET every relative URL through JSON ``$batch`` (20 per request, batches concurrent).

        Returns one :class:`BatchResult` per URL, in order.  Items answered 429, 424, 502, 503 or
        504 are sent again (in a new, smaller batch) after their ``Retry-After``; a final failure
        of a ``$batch`` POST itself (after its own retries) becomes the result of the items still
        waiting, while the answers already received are kept.  A 401 raises.
        """
        wanted = list(urls)
        chunks = [wanted[start : start + BATCH_SIZE] for start in range(0, len(wanted), BATCH_SIZE)]
        results = await gather_all(*(self._batch_chunk(chunk, what) for chunk in chunks))
        return [result for chunk_results in results for result in chunk_results]

    async def _batch_chunk(self, urls: Sequence[str], what: str) -> list[BatchResult]:
        pending = {str(index): _Pending(url) for index, url in enumerate(urls, start=1)}
        done: dict[str, BatchResult] = {}
        while pending:
            body = batch_request_body({item_id: item.url for item_id, item in pending.items()})
            self.stats.batch_items += len(pending)
            try:
                response = await self.request("POST", "/$batch", what=what, content=body)
                answers = decode_batch_response(load_object(response.content, f"{what}: $batch response"))
            except (BadResponse, GraphError) as error:
                failure = error if isinstance(error, GraphError) else GraphError(str(error), code="GRAPH_BAD_RESPONSE")
                if is_fatal(failure):
                    raise
                for item_id, item in pending.items():
                    done[item_id] = BatchResult(item.url, failure.status or 0, error=failure)
                break
            waits: list[float] = []
            for item_id, item in list(pending.items()):
                answer = answers.get(item_id)
                if answer is None:
                    done[item_id] = BatchResult(
                        item.url,
                        0,
                        error=GraphError(
                            f"{what}: the $batch response has no answer for {path_of(item.url)}",
                            code="GRAPH_BAD_RESPONSE",
                        ),
                    )
                    del pending[item_id]
                    continue
                if answer.status == 429:
                    self.stats.throttled += 1
                if answer.status in BATCH_RETRYABLE_STATUSES and item.attempts < self.retry.max_retries:
                    retry_after = parse_retry_after(answer.headers.get("retry-after"))
                    waits.append(self.retry.delay(item.attempts, retry_after))
                    item.attempts += 1
                    continue
                done[item_id] = batch_result(item.url, answer, what)
                del pending[item_id]
            if pending:
                self.stats.retries += 1
                wait = max(waits)
                log.debug("%s: %d $batch items throttled or failed; retrying in %.3fs", what, len(pending), wait)
                await self._wait(wait)
        return [done[str(index)] for index in range(1, len(urls) + 1)]


async def gather_all(*coroutines: Awaitable[Any]) -> list[Any]:
    """Run awaitables concurrently and return their results in order.

    On the first exception the others are cancelled (and awaited) before it propagates, so a
    fatal error does not leave requests running behind the caller's back.
    """
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def batch_request_body(urls: Mapping[str, str]) -> bytes:
    """A JSON ``$batch`` body of GETs: ``{"requests": [{"id", "method", "url"}]}``.

    The urls are relative to the version (``/users/{id}?$select=...``), as Graph requires.
    """
    requests = [{"id": item_id, "method": "GET", "url": url} for item_id, url in urls.items()]
    return json.dumps({"requests": requests}, separators=(",", ":")).encode()


def batch_result(url: str, answer: BatchItemResponse, what: str) -> BatchResult:
    """The :class:`BatchResult` of one final ``$batch`` answer: its JSON body, or its error."""
    item_what = f"{what} ({path_of(url)})"
    if 200 <= answer.status < 300:
        body = answer.body
        if isinstance(body, str):
            body = _decode_base64_json(body)
        if not isinstance(body, dict):
            return BatchResult(
                url,
                answer.status,
                error=GraphError(f"{item_what}: the $batch answer has no JSON body", code="GRAPH_BAD_RESPONSE"),
            )
        return BatchResult(url, answer.status, body=body)
    body = answer.body if isinstance(answer.body, dict) else None
    return BatchResult(url, answer.status, error=graph_error(answer.status, body, item_what, path_of(url)))


def _decode_base64_json(text: str) -> Any:
    try:
        return json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return None


def same_origin(url: str, base_url: str) -> bool:
    """Whether ``url`` has the scheme, host and port of ``base_url`` and lies below its path."""
    try:
        target, base = urlsplit(url), urlsplit(base_url)
        ports = (target.port, base.port)
    except ValueError:
        return False
    defaults = {"http": 80, "https": 443}
    return (
        target.scheme.lower() == base.scheme.lower()
        and (target.hostname or "") == (base.hostname or "")
        and (ports[0] or defaults.get(target.scheme.lower())) == (ports[1] or defaults.get(base.scheme.lower()))
        and (target.path + "/").startswith(base.path.rstrip("/") + "/")
    )


def _origin_text(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    except ValueError:
        return "an unreadable address"


def _describe(error: httpx.TransportError) -> str:
    text = str(error).strip()
    name = error.__class__.__name__
    return f"{name}: {text}" if text else name


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else error.__class__.__name__


# --------------------------------------------------------------------------- SDK plumbing


def check_base_url(base_url: str) -> None:
    """Refuse plain http except on loopback: a bearer token must never cross a network unencrypted."""
    parts = urlsplit(base_url)
    if parts.scheme == "http" and (parts.hostname or "") not in LOOPBACK_HOSTS:
        raise ConfigError(
            "graph.base_url: plain http is only allowed to localhost/127.0.0.1/::1 (the simulator); use https"
        )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Certificate verification exactly as httpx sets it up by default, made once per process:
    loading the trusted certificates costs about 35 ms, and a run makes a client per read."""
    return httpx.create_ssl_context()


def _http_client(graph: GraphConfig) -> httpx.AsyncClient:
    """The SDK's HTTP client with Graph's middleware minus the RetryHandler and the RedirectHandler.

    No directory read syncd makes is answered with a redirect; one that points elsewhere is not
    followed (a 3xx is a failed read), so no answer from another origin is ever taken.

    HTTP/2 lets the concurrent requests share one TLS connection to graph.microsoft.com.
    """
    from kiota_http.middleware import ParametersNameDecodingHandler, UrlReplaceHandler, UserAgentHandler
    from msgraph_core import GraphClientFactory
    from msgraph_core.middleware import GraphTelemetryHandler

    check_base_url(graph.base_url)
    limits = httpx.Limits(max_connections=max(graph.max_concurrency, 1) + 2, max_keepalive_connections=None)
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(graph.timeout_seconds), http2=True, limits=limits, verify=_tls_context()
    )
    middleware = [
        ParametersNameDecodingHandler(),
        UrlReplaceHandler(),
        UserAgentHandler(),
        GraphTelemetryHandler(),
    ]
    graph_client: httpx.AsyncClient = GraphClientFactory.create_with_custom_middleware(middleware, client=client)
    return graph_client


def _request_adapter(base_url: str, credential: Any, scope: str, http_client: httpx.AsyncClient) -> Any:
    """msgraph-sdk's request adapter with the Azure Identity auth provider for ``base_url``'s host."""
    from msgraph_core import BaseGraphRequestAdapter, NationalClouds
    from msgraph_core.authentication import AzureIdentityAuthenticationProvider

    host = urlsplit(base_url).hostname or ""
    allowed = sorted({urlsplit(cloud.value).hostname or "" for cloud in NationalClouds} | {host})
    provider = AzureIdentityAuthenticationProvider(credential, scopes=[scope], allowed_hosts=allowed)
    adapter = BaseGraphRequestAdapter(provider, http_client=http_client)
    adapter.base_url = base_url
    return adapter
