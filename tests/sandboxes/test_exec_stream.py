"""The exec stream reader keeps output the HTTP layer buffered past the upgrade headers.

When the daemon's ``101 UPGRADED`` headers and a fast command's output arrive in
one read, ``http.client`` holds the output in its buffer; reading only the raw
socket lost it (seen as an empty stdout on a loaded CI machine; docker-py #3332).
"""

from __future__ import annotations

import http.client
import socket

from sandboxes.exec_stream import _FrameReader, _drain_http_buffer


def _frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def _upgraded_response(server: socket.socket, client: socket.socket, after_headers: bytes) -> http.client.HTTPResponse:
    server.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"
                   b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + after_headers)
    response = http.client.HTTPResponse(client)
    response.begin()  # reads the headers through a buffered reader, swallowing what follows
    return response


def test_frames_that_arrived_with_the_headers_are_not_lost():
    server, client = socket.socketpair()
    try:
        early = _frame(1, b"hello\n") + _frame(2, b"warn\n")
        response = _upgraded_response(server, client, early)
        server.sendall(_frame(1, b"late\n"))
        server.shutdown(socket.SHUT_WR)
        reader = _FrameReader(client, cap=1 << 20)
        reader.feed(_drain_http_buffer(response.fp, client))
        while not reader.eof:
            reader.pump()
        assert bytes(reader.out[1]) == b"hello\nlate\n"
        assert bytes(reader.out[2]) == b"warn\n"
    finally:
        server.close()
        client.close()


def test_draining_an_empty_buffer_does_not_block_or_eat_later_data():
    server, client = socket.socketpair()
    try:
        response = _upgraded_response(server, client, b"")
        assert _drain_http_buffer(response.fp, client) == b""  # returns at once: nothing held, nothing sent yet
        server.sendall(_frame(1, b"x"))
        server.shutdown(socket.SHUT_WR)
        reader = _FrameReader(client, cap=16)
        while not reader.eof:
            reader.pump()
        assert bytes(reader.out[1]) == b"x"
    finally:
        server.close()
        client.close()
