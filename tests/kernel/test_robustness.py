"""Malformed, unsigned, wrongly signed, oversized and random messages on every socket: the
kernel drops them (logging why) and keeps answering, including its heartbeat."""

from __future__ import annotations

import pytest

REQS = "pip install jupyter_client jupyter_kernel_test nbclient nbformat ipykernel (tests/requirements.txt)"
pytest.importorskip("zmq", reason=REQS)
pytest.importorskip("jupyter_client", reason=REQS)

import hashlib
import hmac
import json
import random
import uuid
from datetime import datetime, timezone

import zmq

from .kernel_harness import run_cell, stream_text

DELIM = b"<IDS|MSG>"


def frames(key: bytes, msg_type: str, content: dict | bytes, sign: bool = True, bad_sig: bool = False) -> list[bytes]:
    header = json.dumps({
        "msg_id": uuid.uuid4().hex, "session": "fuzz", "username": "t", "msg_type": msg_type,
        "version": "5.3", "date": datetime.now(timezone.utc).isoformat(),
    }).encode()
    body = content if isinstance(content, bytes) else json.dumps(content).encode()
    parts = [header, b"{}", b"{}", body]
    sig = b""
    if sign:
        mac = hmac.new(key, digestmod=hashlib.sha256)
        for p in parts:
            mac.update(p)
        sig = mac.hexdigest().encode()
        if bad_sig:
            sig = sig[:-1] + (b"0" if sig[-1:] != b"0" else b"1")
    return [DELIM, sig, *parts]


def recv_reply(sock: zmq.Socket, timeout_ms: int = 10_000) -> dict | None:
    if not sock.poll(timeout_ms):
        return None
    parts = sock.recv_multipart()
    i = parts.index(DELIM)
    return {"header": json.loads(parts[i + 2]), "content": json.loads(parts[i + 5])}


@pytest.fixture
def raw(kernel):
    km, kc = kernel
    info = km.get_connection_info()
    key = info["key"] if isinstance(info["key"], bytes) else info["key"].encode()
    ctx = zmq.Context()
    socks = {}
    for name in ("shell", "control", "stdin"):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://{info['ip']}:{info[name + '_port']}")
        socks[name] = s
    yield km, kc, key, socks, info
    for s in socks.values():
        s.close()
    ctx.term()


def assert_alive(km, kc, info) -> None:
    assert km.is_alive()
    # Heartbeat echoes the bytes it was sent.
    ctx = zmq.Context.instance()
    hb = ctx.socket(zmq.REQ)
    hb.setsockopt(zmq.LINGER, 0)
    hb.connect(f"tcp://{info['ip']}:{info['hb_port']}")
    hb.send(b"ping-\x00\xff-kflow")
    assert hb.poll(5000), "no heartbeat"
    assert hb.recv() == b"ping-\x00\xff-kflow"
    hb.close()
    reply = kc.kernel_info_reply = kc.kernel_info(reply=True, timeout=10)
    assert reply["content"]["status"] == "ok"


def test_bad_messages_are_dropped(raw) -> None:
    km, kc, key, socks, info = raw
    shell = socks["shell"]
    # Unsigned and wrongly signed requests get no reply at all.
    shell.send_multipart(frames(key, "kernel_info_request", {}, sign=False))
    shell.send_multipart(frames(key, "kernel_info_request", {}, bad_sig=True))
    socks["control"].send_multipart(frames(key, "shutdown_request", {"restart": False}, bad_sig=True))
    assert recv_reply(shell, 1000) is None
    # Signed but not JSON, or JSON of the wrong shape.
    shell.send_multipart(frames(key, "execute_request", b"{not json"))
    shell.send_multipart(frames(key, "execute_request", b"[1, 2]"))
    # Signed, right shape, wrong types: an error reply, not a crash or a hang.
    shell.send_multipart(frames(key, "execute_request", {"code": 5}))
    r = recv_reply(shell)
    assert r and r["header"]["msg_type"] == "execute_reply" and r["content"]["status"] == "error"
    # Too few frames, no delimiter, empty frames.
    shell.send_multipart([b"just one frame"])
    shell.send_multipart([DELIM])
    shell.send_multipart([DELIM, b"", b"", b"", b"", b""])
    socks["stdin"].send_multipart(frames(key, "input_reply", {"value": "x"}))
    # Unknown message types are ignored.
    shell.send_multipart(frames(key, "no_such_request_type", {}))
    assert_alive(km, kc, info)


def test_oversized_messages(raw) -> None:
    km, kc, key, socks, info = raw
    shell = socks["shell"]
    # Over the 64 MiB limit: dropped unparsed.
    shell.send_multipart(frames(key, "is_complete_request", {"code": "x" * (70 * 1024 * 1024)}))
    # Large but allowed: answered.
    shell.send_multipart(frames(key, "is_complete_request", {"code": "x = 1\n" * 1_000_000}))
    r = recv_reply(shell, 30_000)
    assert r and r["content"]["status"] == "complete"
    assert recv_reply(shell, 500) is None
    assert_alive(km, kc, info)


def test_random_frames_fuzz(raw) -> None:
    km, kc, key, socks, info = raw
    rng = random.Random(1234)
    pieces = [DELIM, b"", b"{}", b"[]", b"null", b"{\"msg_type\": 1}", b"\xff\xfe", b"<IDS|MSG"]
    for i in range(600):
        n = rng.randrange(0, 9)
        msg = []
        for _ in range(n):
            if rng.random() < 0.4:
                msg.append(rng.choice(pieces))
            else:
                msg.append(rng.randbytes(rng.randrange(0, 64)))
        if not msg:
            msg = [b""]
        socks[rng.choice(["shell", "control", "stdin"])].send_multipart(msg)
        if i % 50 == 0:
            # Properly signed messages with random content shapes.
            content = rng.choice([{"code": None}, {"cursor_pos": -1, "code": "%k"}, {"code": "x" * 10, "cursor_pos": 10**9}, {}])
            socks["shell"].send_multipart(frames(key, rng.choice(["complete_request", "inspect_request", "history_request", "is_complete_request"]), content))
    assert_alive(km, kc, info)
    # And a real cell still runs as a job.
    reply, msgs = run_cell(kc, "print('still here')")
    assert stream_text(msgs) == "still here\n"


ZMTP_GREETING = b"\xff" + b"\x00" * 7 + b"\x01\x7f" + b"\x03\x00" + b"NULL" + b"\x00" * 16 + b"\x00" + b"\x00" * 31
# 73 bytes: a greeting, then one frame header announcing 2^62 bytes. A ZeroMQ codec that
# reserves the announced size aborts on it.
HUGE_FRAME_ATTACK = ZMTP_GREETING + b"\x02" + (1 << 62).to_bytes(8, "big")


def _send_raw(host: str, port: int, payload: bytes, read_back: bool = False) -> None:
    import socket

    with socket.create_connection((host, port), timeout=5) as s:
        try:
            s.sendall(payload)
            if read_back:
                s.settimeout(0.5)
                s.recv(4096)
        except OSError:
            pass  # the kernel closing on us is the expected answer


def test_raw_tcp_garbage_on_every_port(raw) -> None:
    """Bytes from any local process, without the key: the kernel drops the connection and
    goes on; nothing runs."""
    km, kc, key, socks, info = raw
    rng = random.Random(99)
    host = info["ip"]
    ports = [info[f"{name}_port"] for name in ("shell", "iopub", "stdin", "control", "hb")]
    ready = b"\x04\x1c\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER"
    payloads = [
        HUGE_FRAME_ATTACK,
        ZMTP_GREETING + ready + b"\x02" + (1 << 62).to_bytes(8, "big"),
        ZMTP_GREETING + ready + b"\x06" + (1 << 40).to_bytes(8, "big"),  # a huge command
        ZMTP_GREETING + ready + b"\xf8\x05hello",  # reserved flag bits
        ZMTP_GREETING + ready + b"\x01\x00" * 50_000,  # too many frames
        ZMTP_GREETING[:20],
        ZMTP_GREETING.replace(b"NULL", b"CURV"),
        b"\x00" * 64,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for port in ports:
        for payload in payloads:
            _send_raw(host, port, payload, read_back=True)
        for _ in range(40):
            _send_raw(host, port, ZMTP_GREETING[: rng.randrange(0, 64)] + rng.randbytes(rng.randrange(0, 2000)))
    assert_alive(km, kc, info)
    # The earlier sockets still work too: the kernel kept serving every other peer.
    socks["shell"].send_multipart(frames(key, "kernel_info_request", {}))
    r = recv_reply(socks["shell"])
    assert r and r["header"]["msg_type"] == "kernel_info_reply"


def test_a_replayed_request_runs_once(raw) -> None:
    km, kc, key, socks, info = raw
    shell = socks["shell"]
    request = frames(key, "execute_request", {"code": "print('once')", "silent": False, "store_history": True,
                                             "user_expressions": {}, "allow_stdin": False})
    for _ in range(3):
        shell.send_multipart(request)
    first = recv_reply(shell, 60_000)
    assert first and first["header"]["msg_type"] == "execute_reply"
    assert recv_reply(shell, 3000) is None, "a replayed execute_request must not run again"
    # A new message with its own signature is answered as usual.
    shell.send_multipart(frames(key, "kernel_info_request", {}))
    r = recv_reply(shell)
    assert r and r["header"]["msg_type"] == "kernel_info_reply"
    assert_alive(km, kc, info)
