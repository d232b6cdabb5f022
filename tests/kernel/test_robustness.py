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
