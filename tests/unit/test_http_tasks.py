"""Kestra's HTTP tasks (workers/plugins/http.py) as real flows against a real HTTP server started here
(tests/unit/http_server.py): what reaches the server, Kestra's outputs, the options, and the failures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from http_server import PASSWORD, TOKEN, USER, HttpServer, ProxyServer, unanswered_port

from app.model.states import State

REQUEST, DOWNLOAD = "io.kestra.plugin.core.http.Request", "io.kestra.plugin.core.http.Download"
WRITE = "io.kestra.plugin.core.storage.Write"


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    with HttpServer() as running:
        yield running


def run(client: Any, *tasks: dict[str, Any]) -> Any:
    flow = {"id": "http_flow", "namespace": "http.tests", "tasks": list(tasks)}
    return client.run(yaml.safe_dump(flow, sort_keys=False), wait=True, timeout=60)


def outputs(client: Any, *tasks: dict[str, Any]) -> dict[str, Any]:
    ex = run(client, *tasks)
    assert ex.state == State.SUCCESS, ex.to_json()
    return {r.task_id: r.outputs for r in ex.task_runs}


def error(client: Any, *tasks: dict[str, Any]) -> str:
    ex = run(client, *tasks)
    assert ex.state == State.FAILED, ex.to_json()
    return str(next(r for r in ex.task_runs if r.state == State.FAILED).error)


def logs(client: Any, *tasks: dict[str, Any]) -> list[str]:
    ex = run(client, *tasks)
    assert ex.state in (State.SUCCESS, State.WARNING), ex.to_json()
    return [row["message"] for row in client.logs(ex.id)]


def request(uri: str, **props: Any) -> dict[str, Any]:
    return {"id": "req", "type": REQUEST, "uri": uri, **props}


def test_request_sends_method_headers_and_body_and_gives_kestras_outputs(client: Any, server: HttpServer) -> None:
    out = outputs(client, request(server.url + "/echo?q=1", method="post", body='{"name": "{{ flow.id }}"}',
                                  headers={"X-Flow": "{{ flow.namespace }}"}))["req"]
    assert out["code"] == 200 and out["uri"] == server.url + "/echo?q=1"
    assert out["headers"]["X-Echo"] == ["one"] and out["headers"]["x-multi"] == ["a"]
    echo = json.loads(out["body"])  # the body is text, as in Kestra
    assert echo["method"] == "POST" and echo["query"] == {"q": "1"} and echo["body"] == '{"name": "http_flow"}'
    assert echo["headers"]["x-flow"] == "http.tests"
    assert echo["headers"]["content-type"] == "application/json; charset=UTF-8"


def test_content_type_and_default_charset_shape_the_body(client: Any, server: HttpServer) -> None:
    out = outputs(client, request(server.url + "/echo", method="PUT", body="café", contentType="text/plain",
                                  options={"defaultCharset": "ISO-8859-1"}))["req"]
    echo = json.loads(out["body"])
    assert echo["headers"]["content-type"] == "text/plain; charset=ISO-8859-1"
    assert echo["body"] == "café"  # one byte per letter: Latin-1 on the wire


def test_form_data_is_url_encoded_or_multipart_with_storage_files(client: Any, server: HttpServer) -> None:
    write = {"id": "write", "type": WRITE, "content": "hello file", "extension": ".txt"}
    out = outputs(client, write, request(server.url + "/echo", method="POST", formData={
        "user": "{{ flow.id }}", "n": 3}), {
        "id": "multi", "type": REQUEST, "uri": server.url + "/echo", "method": "POST",
        "contentType": "multipart/form-data", "formData": {
            "plain": "text", "doc": "{{ outputs.write.uri }}",
            "named": {"name": "renamed.txt", "content": "{{ outputs.write.uri }}"}}})
    assert json.loads(out["req"]["body"])["form"] == {"user": "http_flow", "n": "3"}
    parts = json.loads(out["multi"]["body"])["parts"]
    assert parts["plain"] == {"filename": None, "content": "text"}
    assert parts["doc"]["content"] == "hello file" and parts["doc"]["filename"].endswith(".txt")
    assert parts["named"] == {"filename": "renamed.txt", "content": "hello file"}


def test_a_failed_status_fails_the_task_unless_allow_failed(client: Any, server: HttpServer) -> None:
    assert "Failed http request with response code '404'" in error(client, request(server.url + "/status/404"))
    allowed = outputs(client, request(server.url + "/status/503", options={"allowFailed": True}),
                      {**request(server.url + "/status/418", allowFailed=True), "id": "old"})  # deprecated form
    assert (allowed["req"]["code"], allowed["req"]["body"]) == (503, "status 503")
    assert allowed["old"]["code"] == 418


def test_redirects_are_followed_unless_follow_redirects_is_false(client: Any, server: HttpServer) -> None:
    out = outputs(client, request(server.url + "/redirect"),
                  {**request(server.url + "/redirect", options={"followRedirects": False}), "id": "stay"})
    assert out["req"]["code"] == 200 and json.loads(out["req"]["body"])["path"] == "/echo"
    assert out["stay"]["code"] == 302 and out["stay"]["headers"]["Location"] == ["/echo"]


def test_basic_bearer_and_digest_auth(client: Any, server: HttpServer) -> None:
    out = outputs(
        client,
        request(server.url + "/basic", options={"auth": {"type": "BASIC", "username": USER, "password": PASSWORD}}),
        {**request(server.url + "/basic", options={"basicAuthUser": USER, "basicAuthPassword": PASSWORD}),
         "id": "flat"},
        {**request(server.url + "/bearer", options={"auth": {"type": "BEARER", "token": TOKEN}}), "id": "bearer"},
        {**request(server.url + "/digest", options={"auth": {"type": "DIGEST", "username": USER,
                                                             "password": PASSWORD}}), "id": "digest"})
    assert [out[t]["body"] for t in ("req", "flat", "bearer", "digest")] == [
        "basic ok", "basic ok", "bearer ok", "digest ok"]
    wrong = {"auth": {"type": "BASIC", "username": USER, "password": "nope"}}
    assert "response code '401'" in error(client, request(server.url + "/basic", options=wrong))


def test_timeouts_fail_the_task_saying_so(client: Any, server: HttpServer) -> None:
    started = time.monotonic()
    message = error(client, request(server.url + "/slow?s=5", options={"timeout": {"readIdleTimeout": "PT0.5S"}}))
    assert "timed out" in message and "ReadTimeout" in message and time.monotonic() - started < 4
    assert "ReadTimeout" in error(client, request(server.url + "/slow?s=5", options={"readTimeout": "PT0.5S"}))
    assert "ReadTimeout" in error(client, request(server.url + "/slow?s=5", options={"readIdleTimeout": "PT0.5S"}))
    with unanswered_port() as port:  # the connection never completes
        started = time.monotonic()
        assert "ConnectTimeout" in error(client, request(f"http://127.0.0.1:{port}/",
                                                         options={"timeout": {"connectTimeout": "PT0.5S"}}))
        assert "ConnectTimeout" in error(client, request(f"http://127.0.0.1:{port}/",
                                                         options={"connectTimeout": "PT0.5S"}))
        assert time.monotonic() - started < 5


def test_the_task_timeout_closes_the_connection_at_once(client: Any, server: HttpServer) -> None:
    started = time.monotonic()
    ex = run(client, request(server.url + "/slow?s=20", timeout="PT1S"))
    assert ex.state == State.FAILED and "timed out after PT1S" in str(ex.task_runs[0].error)
    assert time.monotonic() - started < 6


def test_proxy_options_send_the_request_through_the_proxy(client: Any, server: HttpServer) -> None:
    with ProxyServer() as proxy:
        out = outputs(client, request(server.url + "/echo", options={"proxy": {
            "type": "HTTP", "address": "127.0.0.1", "port": proxy.port, "username": "p", "password": "s3cret"}}),
            {**request(server.url + "/echo?old=1", options={
                "proxyType": "HTTP", "proxyAddress": "127.0.0.1", "proxyPort": proxy.port,
                "proxyUsername": "q", "proxyPassword": "pw"}), "id": "flat"})
    assert out["req"]["headers"]["Via"] == ["celestra-test-proxy"]
    assert [path for _, path, _ in proxy.requests] == [server.url + "/echo", server.url + "/echo?old=1"]
    import base64

    sent = [headers.get("Proxy-Authorization") for _, _, headers in proxy.requests]
    assert sent == ["Basic " + base64.b64encode(b"p:s3cret").decode(), "Basic " + base64.b64encode(b"q:pw").decode()]


def test_ssl_insecure_trust_all_certificates(client: Any, tmp_path: Path) -> None:
    with HttpServer(tls=tmp_path) as tls:
        assert "CERTIFICATE_VERIFY_FAILED" in error(client, request(tls.url + "/echo"))
        out = outputs(client, request(tls.url + "/echo", options={"ssl": {"insecureTrustAllCertificates": True}}),
                      {**request(tls.url + "/echo", sslOptions={"insecureTrustAllCertificates": True}), "id": "old"})
    assert out["req"]["code"] == 200 and out["old"]["code"] == 200


def test_logs_show_what_was_sent_and_received(client: Any, server: HttpServer) -> None:
    lines = logs(client, request(server.url + "/echo", method="POST", body="ping", options={
        "logs": ["REQUEST_HEADERS", "REQUEST_BODY", "RESPONSE_HEADERS", "RESPONSE_BODY"]}))
    text = "\n".join(lines)
    assert "request headers:" in text and "request payload:\n    ping" in text
    assert "response headers (HTTP 200):" in text and "X-Echo: one" in text and "response payload:" in text
    deprecated = "\n".join(logs(client, request(server.url + "/echo", options={"logLevel": "INFO"})))
    assert "response headers (HTTP 200):" in deprecated and "request headers:" not in deprecated


def test_request_bodies_are_bounded_text(client: Any, server: HttpServer) -> None:
    assert "larger than options.maxContentLength (1024 bytes)" in error(
        client, request(server.url + "/bytes?n=2000", options={"maxContentLength": 1024}))
    assert outputs(client, request(server.url + "/bytes?n=2000", options={"maxContentLength": "2KB"}))["req"][
        "body"] == "x" * 2000
    assert "not valid UTF-8" in error(client, request(server.url + "/binary"))


def test_connection_pool_idle_timeout_says_it_has_no_effect(client: Any, server: HttpServer) -> None:
    lines = logs(client, request(server.url + "/echo", options={"connectionPoolIdleTimeout": "PT10S"}))
    assert any("connectionPoolIdleTimeout has no effect" in line for line in lines)


def test_download_streams_into_storage_named_as_the_server_says(client: Any, server: HttpServer) -> None:
    out = outputs(client, {"id": "dl", "type": DOWNLOAD, "uri": server.url + "/file"},
                  {"id": "big", "type": "io.kestra.plugin.fs.http.Download", "uri": server.url + "/bytes?n=300000"})
    dl = out["dl"]
    assert dl["code"] == 200 and dl["length"] == 14 and dl["uri"].endswith("/orders.csv")  # no path from the header
    assert client.download(dl["uri"]) == b"id,name\n1,ada\n"
    assert dl["headers"]["Content-Disposition"] == ['attachment; filename="../orders.csv"']
    assert out["big"]["length"] == 300000 and len(client.download(out["big"]["uri"])) == 300000


def test_download_of_nothing_fails_unless_fail_on_empty_response_is_false(client: Any, server: HttpServer) -> None:
    assert "No response from server" in error(client, {"id": "dl", "type": DOWNLOAD, "uri": server.url + "/empty"})
    out = outputs(client, {"id": "dl", "type": DOWNLOAD, "uri": server.url + "/empty", "failOnEmptyResponse": False})
    assert out["dl"]["length"] == 0 and client.download(out["dl"]["uri"]) == b""


def test_a_bad_uri_is_a_clear_failure(client: Any) -> None:
    assert "uri must be an http:// or https:// URL, got 'ftp://x'" in error(client, request("ftp://x"))
    port = HttpServer()
    free = port.server_address[1]
    port.server_close()
    assert "ConnectError" in error(client, request(f"http://127.0.0.1:{free}/"))
