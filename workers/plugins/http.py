"""Kestra's HTTP tasks: `core.http.Request` (the response into outputs) and `core.http.Download` (into a file of the
internal storage), with Kestra's properties, `options` and outputs, on httpx (`pip install 'celestra[http]'`).

The request is built as Kestra builds it: `formData` is sent url-encoded, or as multipart when `contentType` is
multipart/form-data (a `kestra://` value, or a `{name, content}` map, is a file of the internal storage); else `body`
is sent as text of `contentType`. A status of 400 or more fails the task unless `options.allowFailed`. A kill or the
task's timeout closes the connection at once. The models are importable without httpx, so flows validate anywhere;
only running a task needs it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.model.flow import not_supported_yet
from workers.plugin_api import Duration, RunContext, RunnableTask, TaskFailure, TaskKilled
from workers.plugins.storage import new_spool, owned_file, parse_bytes, reading, store_spooled

if TYPE_CHECKING:
    import httpx

MAX_CONTENT_LENGTH = 10 * 1024 * 1024  # Kestra's default limit on a Request's response body (Download has none)
READ_IDLE_TIMEOUT = 300.0  # Kestra's default: 5 minutes without a byte from the server fails the request
LogType = Literal["REQUEST_HEADERS", "REQUEST_BODY", "RESPONSE_HEADERS", "RESPONSE_BODY"]
LEVEL_LOGS: dict[str, list[LogType]] = {  # the deprecated `logLevel`, as Kestra maps it to `logs`
    "TRACE": ["REQUEST_HEADERS", "REQUEST_BODY", "RESPONSE_HEADERS", "RESPONSE_BODY"],
    "DEBUG": ["REQUEST_HEADERS", "RESPONSE_HEADERS"], "INFO": ["RESPONSE_HEADERS"]}


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpTimeout(_Options):
    connectTimeout: Duration | None = None
    readIdleTimeout: Duration | None = None  # default 5 minutes


class HttpProxy(_Options):
    type: Literal["DIRECT", "HTTP", "SOCKS"] = "DIRECT"
    address: str | None = None
    port: int | str | None = None
    username: str | None = None
    password: str | None = None


class HttpBasicAuth(_Options):
    type: Literal["BASIC"]
    username: str | None = None
    password: str | None = None


class HttpBearerAuth(_Options):
    type: Literal["BEARER"]
    token: str | None = None


class HttpDigestAuth(_Options):
    type: Literal["DIGEST"]
    username: str | None = None
    password: str | None = None


class HttpSsl(_Options):
    insecureTrustAllCertificates: bool | str | None = None


class HttpOptions(_Options):
    """Kestra's HttpConfiguration; the deprecated flat properties are folded into the nested ones, as Kestra does."""

    timeout: HttpTimeout | None = None
    proxy: HttpProxy | None = None
    auth: Annotated[HttpBasicAuth | HttpBearerAuth | HttpDigestAuth, Field(discriminator="type")] | None = None
    ssl: HttpSsl | None = None
    followRedirects: bool | str = True
    allowFailed: bool | str = False
    defaultCharset: str = "UTF-8"
    logs: list[LogType] | None = None
    connectTimeout: Duration | None = None  # deprecated: timeout.connectTimeout
    readTimeout: Duration | None = None  # deprecated: timeout.readIdleTimeout
    readIdleTimeout: Duration | None = None  # deprecated: timeout.readIdleTimeout
    connectionPoolIdleTimeout: Duration | None = None  # deprecated, no effect (a warning says so)
    maxContentLength: int | str | None = None  # deprecated; Request only, default 10MB
    proxyType: Literal["DIRECT", "HTTP", "SOCKS"] | None = None  # deprecated: proxy.*
    proxyAddress: str | None = None
    proxyPort: int | str | None = None
    proxyUsername: str | None = None
    proxyPassword: str | None = None
    basicAuthUser: str | None = None  # deprecated: auth {type: BASIC}
    basicAuthPassword: str | None = None
    logLevel: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF", "NOT_SPECIFIED"] | None = None

    @model_validator(mode="after")
    def _fold_deprecated(self) -> HttpOptions:
        timeout = self.timeout or HttpTimeout()
        self.timeout = HttpTimeout(connectTimeout=timeout.connectTimeout or self.connectTimeout,
                                      readIdleTimeout=timeout.readIdleTimeout or self.readTimeout
                                      or self.readIdleTimeout)
        flat = {"type": self.proxyType, "address": self.proxyAddress, "port": self.proxyPort,
                "username": self.proxyUsername, "password": self.proxyPassword}
        if any(v is not None for v in flat.values()):  # what the nested `proxy` sets wins
            nested = self.proxy.model_dump(exclude_unset=True) if self.proxy else {}
            self.proxy = HttpProxy(**{k: v for k, v in flat.items() if v is not None} | nested)
        if self.auth is None and (self.basicAuthUser is not None or self.basicAuthPassword is not None):
            self.auth = HttpBasicAuth(type="BASIC", username=self.basicAuthUser, password=self.basicAuthPassword)
        if self.logs is None and self.logLevel in LEVEL_LOGS:
            self.logs = LEVEL_LOGS[self.logLevel]
        return self


class _Http(RunnableTask):
    uri: str
    method: str = "GET"
    body: str | None = None
    formData: dict[str, Any] | None = None
    contentType: str = "application/json"
    headers: dict[str, Any] | None = None
    options: HttpOptions | None = None
    allowFailed: bool | str | None = None  # deprecated: options.allowFailed
    sslOptions: HttpSsl | None = None  # deprecated: options.ssl

    def _options(self) -> HttpOptions:
        options = self.options or HttpOptions()
        updates: dict[str, Any] = {}
        if self.allowFailed is not None:
            updates["allowFailed"] = self.allowFailed
        if self.sslOptions is not None and options.ssl is None:
            updates["ssl"] = self.sslOptions
        return options.model_copy(update=updates) if updates else options

    @contextlib.contextmanager
    def _exchange(self, ctx: RunContext, *, limit: int | None) -> Iterator[tuple[httpx.Response, Iterator[bytes]]]:
        options = self._options()
        with exchange(ctx, options, lambda stack: self._request(ctx, options, stack), limit=limit) as sent:
            yield sent

    def _request(self, ctx: RunContext, options: HttpOptions, stack: contextlib.ExitStack) -> dict[str, Any]:
        uri = ctx.render_str(self.uri).strip()
        if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
            raise TaskFailure(f"uri must be an http:// or https:// URL, got '{uri}'")
        content_type = ctx.render_str(self.contentType).strip()
        headers: list[tuple[str, str]] = [(ctx.render_str(k), ctx.render_str(v))
                                          for k, v in (self.headers or {}).items()]
        args: dict[str, Any] = {"method": ctx.render_str(self.method).strip().upper(), "url": uri}
        form = ctx.render(self.formData) if self.formData else None
        if form:
            if content_type == "multipart/form-data":
                args["data"], args["files"] = self._multipart(ctx, form, stack)
            else:
                args["data"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in form.items()}
        elif self.body is not None:
            charset = ctx.render_str(options.defaultCharset).strip()
            try:
                args["content"] = ctx.render_str(self.body).encode(charset)
            except LookupError:
                raise TaskFailure(f"options.defaultCharset: unknown charset '{charset}'") from None
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("Content-Type", f"{content_type}; charset={charset}"))
        args["headers"] = headers
        return args

    @staticmethod
    def _multipart(ctx: RunContext, form: dict[str, Any], stack: contextlib.ExitStack) -> tuple[dict[str, str], Any]:
        data: dict[str, str] = {}
        files: list[tuple[str, tuple[str, BinaryIO]]] = []
        for key, value in form.items():
            if isinstance(value, str) and value.startswith("kestra://"):
                uri = owned_file(ctx, value)
                files.append((key, (uri.rsplit("/", 1)[-1], stack.enter_context(reading(ctx, uri)))))
            elif isinstance(value, dict) and "name" in value and "content" in value:
                uri = owned_file(ctx, value["content"])
                files.append((key, (str(value["name"]), stack.enter_context(reading(ctx, uri)))))
            else:
                data[key] = value if isinstance(value, str) else json.dumps(value)
        return data, files


class HttpRequest(_Http):
    """Send an HTTP request; outputs `uri`, `code`, `headers` and `body` (text, at most options.maxContentLength)."""

    type: Literal["io.kestra.plugin.core.http.Request", "io.kestra.plugin.fs.http.Request", "Request"]
    encryptBody: Annotated[bool, not_supported_yet(
        "encryptBody", False, ": task outputs are stored as they are (keep secrets in the KV store)")] = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        limit = _content_limit(ctx, self._options())
        with self._exchange(ctx, limit=limit) as (response, chunks):
            raw = b"".join(chunks)
        try:
            body = raw.decode("utf-8") if raw else None
        except UnicodeDecodeError as exc:
            raise TaskFailure(f"The response body is not valid UTF-8 text ({exc.reason} at byte {exc.start}): the "
                              "Request task only supports text bodies; use the Download task instead") from None
        _log_response_body(ctx, self._options(), body)
        return {"uri": str(response.request.url), "code": response.status_code, "headers": _headers(response),
                "body": body}


class HttpDownload(_Http):
    """Download a file into the internal storage (streamed); outputs `uri`, `code`, `length` and `headers`."""

    type: Literal["io.kestra.plugin.core.http.Download", "io.kestra.plugin.fs.http.Download", "Download"]
    failOnEmptyResponse: bool | str = True

    def run(self, ctx: RunContext) -> dict[str, Any]:
        spool = new_spool()
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(spool.close)
            with self._exchange(ctx, limit=None) as (response, chunks):
                size = 0
                for chunk in chunks:
                    spool.write(chunk)
                    size += len(chunk)
            declared = response.headers.get("Content-Length")
            if declared is not None and "Content-Encoding" not in response.headers and int(declared) != size:
                raise TaskFailure(f"Invalid size, got {size}, expected {declared}")
            if size == 0:
                if _flag(ctx, self.failOnEmptyResponse) and not _flag(ctx, self._options().allowFailed):
                    raise TaskFailure(f"No response from server (HTTP {response.status_code}, empty body)")
                ctx.log("WARN", f"File '{response.request.url}' is empty")
            name = _filename(response) or _suffix_name(str(response.request.url))
            uri = store_spooled(ctx, name, spool)
            cleanup.pop_all()
        return {"uri": uri, "code": response.status_code, "length": size, "headers": _headers(response)}


# -- helpers ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def exchange(ctx: RunContext, options: HttpOptions, request_args: Callable[[contextlib.ExitStack], dict[str, Any]], *,
             limit: int | None) -> Iterator[tuple[httpx.Response, Iterator[bytes]]]:
    """Send the request (httpx.Client.build_request's arguments); yield the response (headers read) and its body's
    chunks. A status of 400 or more fails the task unless options.allowFailed; a kill shuts the connection."""
    try:
        import httpx
    except ImportError as exc:
        raise TaskFailure(f"The HTTP tasks need httpx: pip install 'celestra[http]' ({exc})") from exc
    with contextlib.ExitStack() as stack:
        client, sockets = stack.enter_context(_client(ctx, options))
        request = client.build_request(**request_args(stack))
        _log_request(ctx, options, request)
        done = threading.Event()
        watcher = threading.Thread(target=_shut_on_kill, args=(ctx, sockets, done), daemon=True)
        watcher.start()
        stack.callback(done.set)
        try:
            response = client.send(request, stream=True)
            stack.callback(response.close)
            _log_response_headers(ctx, options, response)
            if response.status_code >= 400 and not _flag(ctx, options.allowFailed):
                preview = response.read()[:1000].decode(errors="replace")
                raise TaskFailure(f"Failed http request with response code '{response.status_code}'"
                                  + (f": {preview}" if preview else ""))
            yield response, _chunks(ctx, response, limit)
        except httpx.TimeoutException as exc:
            raise TaskFailure(f"HTTP request to {request.url} timed out: {type(exc).__name__} {exc}") from exc
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            if ctx.killed:
                raise TaskKilled("killed during the HTTP request") from exc
            raise TaskFailure(f"HTTP request to {request.url} failed: {type(exc).__name__}: {exc}") from exc


def _flag(ctx: RunContext, value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    return ctx.render_str(value).strip().lower() == "true"


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if value is not None else None


@contextlib.contextmanager
def _client(ctx: RunContext, options: HttpOptions) -> Iterator[tuple[httpx.Client, list[socket.socket]]]:
    """The task's client, and the sockets it opens (so a kill can shut them: closing the client from another
    thread does not wake a read blocked on one)."""
    import httpcore
    import httpx

    sockets: list[socket.socket] = []

    class Recorded(httpcore.SyncBackend):
        def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
            stream = super().connect_tcp(*args, **kwargs)
            sockets.append(stream.get_extra_info("socket"))
            return stream

    timeout = options.timeout or HttpTimeout()
    read = _seconds(timeout.readIdleTimeout) or READ_IDLE_TIMEOUT
    insecure = options.ssl and options.ssl.insecureTrustAllCertificates is not None and _flag(
        ctx, options.ssl.insecureTrustAllCertificates)
    transport: dict[str, Any] = {"verify": False if insecure else _verified_context()}
    if options.connectionPoolIdleTimeout is not None:  # Kestra ignores it too; say so rather than stay silent
        ctx.log("WARN", "options.connectionPoolIdleTimeout has no effect: each task run opens its own connection "
                        "and closes it when it ends")
    proxy = options.proxy
    if proxy is not None and proxy.type != "DIRECT":
        if not proxy.address:
            raise TaskFailure(f"options.proxy: a {proxy.type} proxy needs an address")
        scheme = "socks5" if proxy.type == "SOCKS" else "http"
        user = ""
        if proxy.username:
            user = urllib.parse.quote(ctx.render_str(proxy.username), safe="")
            user += ":" + urllib.parse.quote(ctx.render_str(proxy.password or ""), safe="") + "@"
        port = f":{ctx.render_str(proxy.port)}" if proxy.port is not None else ""
        transport["proxy"] = f"{scheme}://{user}{ctx.render_str(proxy.address)}{port}"
    try:
        http = httpx.HTTPTransport(**transport)  # only the flow's proxy: never the worker's environment
    except ImportError as exc:  # a SOCKS proxy needs socksio
        raise TaskFailure(f"options.proxy: {exc}") from exc
    http._pool._network_backend = Recorded()  # type: ignore[attr-defined]  # httpx does not take a backend
    client = httpx.Client(transport=http, timeout=httpx.Timeout(read, connect=_seconds(timeout.connectTimeout)),
                          follow_redirects=_flag(ctx, options.followRedirects), auth=_auth(ctx, options))
    with client:
        yield client, sockets


@functools.cache
def _verified_context() -> ssl.SSLContext:
    """The certificate-checking context, built once per process: httpx would read the CA bundle again for every
    client (~20 ms a request)."""
    import httpx

    return httpx.create_ssl_context()


def _auth(ctx: RunContext, options: HttpOptions) -> Any:
    import httpx

    auth = options.auth
    if isinstance(auth, HttpBasicAuth):
        return httpx.BasicAuth(ctx.render_str(auth.username or ""), ctx.render_str(auth.password or ""))
    if isinstance(auth, HttpDigestAuth):
        return httpx.DigestAuth(ctx.render_str(auth.username or ""), ctx.render_str(auth.password or ""))
    if isinstance(auth, HttpBearerAuth):
        token = ctx.render_str(auth.token or "")

        def bearer(request: httpx.Request) -> httpx.Request:
            request.headers["Authorization"] = f"Bearer {token}"
            return request

        return bearer
    return None


def _shut_on_kill(ctx: RunContext, sockets: list[socket.socket], done: threading.Event) -> None:
    while not done.is_set():
        if ctx.kill_event.wait(0.1):
            for sock in list(sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # a read blocked on it returns now
            return


def _chunks(ctx: RunContext, response: httpx.Response, limit: int | None) -> Iterator[bytes]:
    size = 0
    for chunk in response.iter_bytes():
        if ctx.killed:
            raise TaskKilled("killed during the HTTP request")
        size += len(chunk)
        if limit is not None and size > limit:
            raise TaskFailure(f"The response body is larger than options.maxContentLength ({limit} bytes): use the "
                              "Download task for large payloads")
        yield chunk


def _content_limit(ctx: RunContext, options: HttpOptions) -> int:
    if options.maxContentLength is None:
        return MAX_CONTENT_LENGTH
    try:
        return parse_bytes(ctx.render_str(options.maxContentLength))
    except ValueError as exc:
        raise TaskFailure(f"options.maxContentLength: {exc}") from None


def _headers(response: httpx.Response) -> dict[str, list[str]]:
    """Map<String, List<String>>, the names as the server wrote them."""
    found: dict[str, list[str]] = {}
    for key, value in response.headers.raw:
        found.setdefault(key.decode("latin-1"), []).append(value.decode("latin-1"))
    return found


def _log_request(ctx: RunContext, options: HttpOptions, request: httpx.Request) -> None:
    logs = options.logs or []
    if "REQUEST_HEADERS" in logs:
        ctx.log("INFO", "request headers:" + "".join(f"\n    {k}: {v}" for k, v in request.headers.multi_items()))
    if "REQUEST_BODY" in logs:
        body = request.read()
        ctx.log("INFO", "request payload:" + (f"\n    {body.decode(errors='replace')}" if body else " null"))


def _log_response_headers(ctx: RunContext, options: HttpOptions, response: httpx.Response) -> None:
    if "RESPONSE_HEADERS" in (options.logs or []):
        ctx.log("INFO", f"response headers (HTTP {response.status_code}):"
                + "".join(f"\n    {k}: {', '.join(v)}" for k, v in _headers(response).items()))


def _log_response_body(ctx: RunContext, options: HttpOptions, body: str | None) -> None:
    if "RESPONSE_BODY" in (options.logs or []):
        ctx.log("INFO", "response payload:" + (f"\n    {body}" if body else " null"))


def _filename(response: httpx.Response) -> str | None:
    """The file name of a Content-Disposition header (its last path part only), URL-encoded as Kestra does."""
    header = response.headers.get("Content-Disposition")
    if not header:
        return None
    name = None
    for part in (p.strip() for p in header.split(";")):
        if part.startswith("filename*"):
            name = urllib.parse.unquote(part.split("'", 2)[-1].strip('"'))
        elif part.startswith("filename") and name is None:
            name = part.split("=", 1)[-1].strip().strip('"')
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    return urllib.parse.quote(name, safe="") if name not in ("", ".", "..") else None


def _suffix_name(url: str) -> str:
    last = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return "download" + (last[last.index("."):] if "." in last else "")


TASKS: list[type[RunnableTask]] = [HttpRequest, HttpDownload]
