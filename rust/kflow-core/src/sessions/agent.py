"""kflow's session agent: the main process of a session pod (or, on the local backend, of a
session's process group). It runs a real ipykernel beside it and relays the Jupyter protocol
to one kflow client over one byte stream, reached through the API server's port-forward (or a
private Unix socket on this machine).

Why an agent and not the kernel's five ZeroMQ ports forwarded one by one: iopub is PUB/SUB, so
anything published while a forward stream is down would be lost. The agent numbers every frame
it sends and keeps it until the client acknowledges it, so a client that reconnects (a dropped
stream, a laptop that slept) gets the rest of a running cell's output exactly once.

The frame: u32 length, u8 kind, u64 sequence number, u32 part count, then each part as u32
length + bytes. Sequence 0 marks a frame that is not retransmitted (hello, welcome, ack).

Started by kflow-core as the session's script; it imports only the standard library and pyzmq
(ipykernel's own dependency).
"""

import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

HELLO, WELCOME, MSG, OP, EVENT, ACK = 1, 2, 3, 4, 5, 6
MAX_FRAME = 256 * 1024 * 1024
# Unacknowledged output kept for a client that is away; the oldest goes first past this.
MAX_UNACKED_BYTES = 256 * 1024 * 1024
DELIM = b"<IDS|MSG>"
AGENT_FILE = os.path.basename(__file__)


def log(text):
    sys.stderr.write(f"[kflow-session] {text}\n")
    sys.stderr.flush()


def encode(kind, seq, parts):
    body = [struct.pack(">BQI", kind, seq, len(parts))]
    for part in parts:
        body.append(struct.pack(">I", len(part)))
        body.append(part)
    data = b"".join(body)
    return struct.pack(">I", len(data)) + data


async def read_frame(reader):
    (n,) = struct.unpack(">I", await reader.readexactly(4))
    if n < 13 or n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes")
    data = await reader.readexactly(n)
    kind, seq, count = struct.unpack_from(">BQI", data, 0)
    offset, parts = 13, []
    for _ in range(count):
        (size,) = struct.unpack_from(">I", data, offset)
        offset += 4
        if offset + size > n:
            raise ValueError("part runs past its frame")
        parts.append(data[offset : offset + size])
        offset += size
    if offset != n:
        raise ValueError("bytes after the frame's last part")
    return kind, seq, parts


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Kernel:
    """One ipykernel process and the agent's sockets to it."""

    def __init__(self, ctx, workdir, on_message):
        self.ctx = ctx
        self.workdir = workdir
        self.on_message = on_message
        self.proc = None
        self.sockets = {}
        self.tasks = []
        self.identity = uuid.uuid4().hex.encode()
        self.key = b""
        self.private = tempfile.mkdtemp(prefix="kflow-session-")

    async def start(self):
        import zmq

        self.key = uuid.uuid4().hex.encode()
        shell, iopub, stdin, control, hb = free_ports(5)
        conn = {
            "transport": "tcp", "ip": "127.0.0.1", "key": self.key.decode(),
            "signature_scheme": "hmac-sha256", "shell_port": shell, "iopub_port": iopub,
            "stdin_port": stdin, "control_port": control, "hb_port": hb,
        }
        path = os.path.join(self.private, "kernel.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(conn, f)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ipykernel_launcher", "-f", path], cwd=self.workdir
        )
        for name, kind, port in (
            ("shell", zmq.DEALER, shell), ("control", zmq.DEALER, control),
            ("stdin", zmq.DEALER, stdin), ("iopub", zmq.SUB, iopub),
        ):
            sock = self.ctx.socket(kind)
            sock.setsockopt(zmq.LINGER, 0)
            if name in ("shell", "stdin"):
                # One identity for both: ipykernel sends input_request to the shell's identity.
                sock.setsockopt(zmq.IDENTITY, self.identity)
            if kind == zmq.SUB:
                sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(f"tcp://127.0.0.1:{port}")
            self.sockets[name] = sock
        await self.wait_ready()
        self.tasks = [asyncio.ensure_future(self.pump(n)) for n in ("shell", "control", "stdin", "iopub")]

    async def wait_ready(self):
        """Until the kernel answers kernel_info and its iopub reaches us (nothing published
        after this is lost to the subscription's start)."""
        import zmq

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ipykernel exited with code {self.proc.returncode} while starting")
            msg_id = uuid.uuid4().hex
            self.send("shell", self.request("kernel_info_request", msg_id))
            got_reply = got_iopub = False
            until = time.monotonic() + 1.0
            while time.monotonic() < until and not (got_reply and got_iopub):
                for name in ("shell", "iopub"):
                    sock = self.sockets[name]
                    if await sock.poll(50, zmq.POLLIN):
                        parts = await sock.recv_multipart()
                        parent = json.loads(parts[parts.index(DELIM) + 3] or b"{}")
                        if parent.get("msg_id") == msg_id:
                            got_reply |= name == "shell"
                            got_iopub |= name == "iopub"
            if got_reply and got_iopub:
                return
        raise RuntimeError("ipykernel did not answer within 120 s")

    def request(self, msg_type, msg_id):
        header = {
            "msg_id": msg_id, "msg_type": msg_type, "session": "kflow-session-agent",
            "username": "kflow", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "version": "5.3",
        }
        return [json.dumps(header).encode(), b"{}", b"{}", b"{}"]

    def send(self, channel, parts):
        sock = self.sockets.get(channel)
        if sock is None or len(parts) < 4:
            return
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts[:4]:
            mac.update(part)
        sock.send_multipart([DELIM, mac.hexdigest().encode(), *parts])

    async def pump(self, channel):
        sock = self.sockets[channel]
        while True:
            parts = await sock.recv_multipart(copy=True)
            try:
                at = parts.index(DELIM)
            except ValueError:
                continue
            # Signature dropped: the client re-signs with its own frontend's key.
            self.on_message(channel, parts[at + 2 :])

    def interrupt(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)

    async def stop(self):
        for task in self.tasks:
            task.cancel()
        self.tasks = []
        for sock in self.sockets.values():
            sock.close(0)
        self.sockets = {}
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            for _ in range(50):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                self.proc.kill()
                self.proc.wait()


class Agent:
    def __init__(self, workdir, idle_timeout):
        import zmq.asyncio

        self.workdir = workdir
        self.idle_timeout = idle_timeout
        self.instance = uuid.uuid4().hex
        self.kernel = Kernel(zmq.asyncio.Context(), workdir, self.from_kernel)
        self.out_seq = 0
        self.unacked = []  # (seq, frame bytes)
        self.unacked_bytes = 0
        self.in_seq = 0
        self.writer = None
        self.client = None
        self.busy = False
        self.last_activity = time.monotonic()
        self.known = None  # path -> sha256 of the project files as the client last sent them
        self.restarting = False
        self.done = asyncio.Event()

    # What goes to the client: numbered, kept until acknowledged, written when connected.
    def emit(self, kind, parts):
        self.out_seq += 1
        frame = encode(kind, self.out_seq, parts)
        self.unacked.append((self.out_seq, frame))
        self.unacked_bytes += len(frame)
        while self.unacked_bytes > MAX_UNACKED_BYTES and len(self.unacked) > 1:
            _, old = self.unacked.pop(0)
            self.unacked_bytes -= len(old)
        if self.writer is not None:
            try:
                self.writer.write(frame)
            except Exception:
                self.writer = None

    def event(self, body):
        self.emit(EVENT, [json.dumps(body).encode()])

    def from_kernel(self, channel, parts):
        if channel == "iopub" and len(parts) >= 4:
            try:
                header = json.loads(parts[0])
                if header.get("msg_type") == "status":
                    state = json.loads(parts[3]).get("execution_state")
                    self.busy = state == "busy"
                    self.last_activity = time.monotonic()
            except ValueError:
                pass
        self.emit(MSG, [channel.encode(), *parts])

    def acked(self, received):
        while self.unacked and self.unacked[0][0] <= received:
            _, frame = self.unacked.pop(0)
            self.unacked_bytes -= len(frame)

    async def serve_client(self, reader, writer):
        try:
            kind, _, parts = await asyncio.wait_for(read_frame(reader), 30)
            if kind != HELLO or not parts:
                raise ValueError("the first frame must be hello")
            hello = json.loads(parts[0])
        except Exception as e:
            log(f"client refused: {e}")
            writer.close()
            return
        if self.writer is not None:
            # The newest client wins: the old stream is one the network dropped silently.
            self.writer.close()
        client = hello.get("client")
        if client != self.client:
            # A new client (a restarted kernel), not the old one back: what the old one never
            # took is not for it, and its frames are numbered from 1 again.
            self.client = client
            self.unacked.clear()
            self.unacked_bytes = 0
            self.in_seq = 0
        self.acked(int(hello.get("received", 0)))
        writer.write(encode(WELCOME, 0, [json.dumps({"received": self.in_seq, "agent": self.instance}).encode()]))
        for _, frame in self.unacked:
            writer.write(frame)
        self.writer = writer
        try:
            while True:
                kind, seq, parts = await read_frame(reader)
                if seq and seq <= self.in_seq:
                    continue  # a retransmission the client could not know we had
                if seq:
                    self.in_seq = seq
                if kind == ACK:
                    self.acked(int(json.loads(parts[0]).get("received", 0)))
                elif kind == MSG and parts:
                    self.last_activity = time.monotonic()
                    self.kernel.send(parts[0].decode(), parts[1:])
                elif kind == OP and parts:
                    self.last_activity = time.monotonic()
                    await self.op(json.loads(parts[0]), parts[1:])
                if seq and self.writer is writer:
                    writer.write(encode(ACK, 0, [json.dumps({"received": self.in_seq}).encode()]))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, OSError) as e:
            log(f"client stream ended: {type(e).__name__}")
        finally:
            if self.writer is writer:
                self.writer = None
            writer.close()

    async def op(self, body, data):
        name, op_id = body.get("op"), body.get("id")
        if name == "interrupt":
            self.kernel.interrupt()
            self.event({"event": "done", "id": op_id})
        elif name == "restart":
            self.restarting = True
            await self.kernel.stop()
            await self.kernel.start()
            self.restarting = False
            self.event({"event": "done", "id": op_id})
        elif name == "sync":
            need, deleted = self.sync_need(body.get("files", {}))
            self.event({"event": "sync_need", "id": op_id, "need": need, "deleted": deleted})
        elif name == "put":
            written = self.put(body.get("paths", []), body.get("digests", []), data)
            self.event({"event": "done", "id": op_id, "written": written})
        elif name == "shutdown":
            self.event({"event": "done", "id": op_id})
            self.done.set()
        else:
            self.event({"event": "error", "id": op_id, "message": f"unknown op {name!r}"})

    def safe_path(self, rel):
        path = os.path.normpath(os.path.join(self.workdir, rel))
        if os.path.isabs(rel) or not path.startswith(self.workdir + os.sep):
            raise ValueError(f"{rel!r} is outside the project")
        return path

    def digest(self, path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    def sync_need(self, files):
        if self.known is None:
            # What the session started with: the packaged project, unpacked here.
            self.known = {}
            for root, _, names in os.walk(self.workdir):
                for n in names:
                    full = os.path.join(root, n)
                    rel = os.path.relpath(full, self.workdir)
                    if rel != AGENT_FILE and os.path.isfile(full) and not os.path.islink(full):
                        self.known[rel] = self.digest(full)
        need = [p for p, d in files.items() if self.known.get(p) != d]
        deleted = []
        # Only files that came from the client are removed: outputs a cell wrote stay.
        for rel in [p for p in self.known if p not in files]:
            try:
                os.remove(self.safe_path(rel))
            except (OSError, ValueError):
                pass
            del self.known[rel]
            deleted.append(rel)
        return need, deleted

    def put(self, paths, digests, data):
        written = 0
        for rel, digest, content in zip(paths, digests, data):
            try:
                path = self.safe_path(rel)
            except ValueError as e:
                log(str(e))
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".kflow-sync"
            with open(tmp, "wb") as f:
                f.write(content)
            os.replace(tmp, path)
            self.known[rel] = digest
            written += 1
        return written

    async def watch(self):
        """Idle culling, and a kernel that died (restarted, its cell told)."""
        while not self.done.is_set():
            await asyncio.sleep(0.5)
            proc = self.kernel.proc
            if proc is not None and proc.poll() is not None and not self.restarting:
                code = proc.returncode
                log(f"ipykernel exited with code {code}; starting a fresh one")
                self.busy = False
                await self.kernel.stop()
                self.event({"event": "kernel_died", "exit_code": code})
                await self.kernel.start()
                self.event({"event": "kernel_restarted"})
            idle = time.monotonic() - self.last_activity
            if self.idle_timeout and not self.busy and idle > self.idle_timeout:
                log(f"idle for {int(idle)} s; ending the session")
                self.event({"event": "culled", "idle_seconds": int(idle)})
                self.done.set()


async def main(argv):
    listen, idle_timeout = "tcp", 0.0
    i = 0
    while i < len(argv):
        if argv[i] == "--listen":
            listen = argv[i + 1]
        elif argv[i] == "--idle-timeout":
            idle_timeout = float(argv[i + 1])
        i += 2
    agent = Agent(os.getcwd(), idle_timeout)
    await agent.kernel.start()
    if listen.startswith("unix:"):
        path = listen[5:]
        old = os.umask(0o077)
        try:
            server = await asyncio.start_unix_server(agent.serve_client, path)
        finally:
            os.umask(old)
        address = listen
    else:
        server = await asyncio.start_server(agent.serve_client, "127.0.0.1", 0)
        address = f"tcp:127.0.0.1:{server.sockets[0].getsockname()[1]}"
    print(f"kflow-session-ready {address}", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.done.set)
    watcher = asyncio.ensure_future(agent.watch())
    await agent.done.wait()
    # Let the last frames (the culling notice, a shutdown's answer) reach a connected client.
    if agent.writer is not None:
        try:
            await asyncio.wait_for(agent.writer.drain(), 2)
        except Exception:
            pass
    watcher.cancel()
    server.close()
    await agent.kernel.stop()
    if listen.startswith("unix:"):
        try:
            os.remove(listen[5:])
        except OSError:
            pass


def ensure_ipykernel():
    """An image without ipykernel gets it installed (through the pip cache when the session
    mounts one), as the startup chain installs a job's pip packages."""
    try:
        import ipykernel  # noqa: F401
        import zmq  # noqa: F401
        return True
    except ImportError:
        pass
    log("ipykernel is not in this image; installing it")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "ipykernel"],
        stdout=sys.stderr,
    )
    return done.returncode == 0


if __name__ == "__main__":
    if not ensure_ipykernel():
        print("kflow-session-failed ipykernel is not in this image and could not be installed: "
              "use an image with Jupyter, or one whose pip can reach an index", flush=True)
        sys.exit(3)
    asyncio.run(main(sys.argv[1:]))
