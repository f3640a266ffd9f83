"""Bodies that look like HTML form submissions reach the application as the bytes the client
sent. Twisted parses a POST's form body into ``request.args`` before daphne sees the request
(daphne never reads them); the server turns that off (``streamdash.core.flowserver``), so
such a body is neither refused by Twisted's parser nor parsed on the event loop."""

from __future__ import annotations

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

MULTIPART = "multipart/form-data"


def test_a_multipart_stream_takes_a_body_twisteds_form_parser_refuses(server: Server) -> None:
    key = server.create_project()
    path = "/ds/v1/stream/form-bodies"
    body = b"not a multipart body: no boundary anywhere"
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        client.put(path, headers={"Content-Type": MULTIPART}).raise_for_status()
        appended = client.post(path, content=body, headers={"Content-Type": MULTIPART})
        assert appended.status_code == 204, appended.text
        read = client.get(path, params={"offset": "-1"})
    assert read.status_code == 200
    assert read.content == body


def test_a_urlencoded_append_keeps_its_bytes(server: Server) -> None:
    key = server.create_project()
    path = "/ds/v1/stream/form-urlencoded"
    body = b"a=1&b=%20two&a=3"
    kind = "application/x-www-form-urlencoded"
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        client.put(path, headers={"Content-Type": kind}).raise_for_status()
        assert client.post(path, content=body, headers={"Content-Type": kind}).status_code == 204
        assert client.get(path, params={"offset": "-1"}).content == body
