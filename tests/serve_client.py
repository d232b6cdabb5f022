"""A test-side peer for `kflow serve --stdio`: the real process over real pipes, LSP framing,
and an in-memory "SecretStorage" answering the server's `secrets/*` requests as VS Code does."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time


class RpcError(Exception):
    def __init__(self, error: dict):
        super().__init__(error.get("message"))
        self.code = error.get("code")
        self.data = error.get("data") or {}


class ServeClient:
    def __init__(self, env=None, secrets: dict | None = None, cwd=None):
        self.proc = subprocess.Popen([sys.executable, "-m", "kflow", "serve", "--stdio"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(env if env is not None else os.environ), cwd=cwd)
        self.secrets = secrets if secrets is not None else {}
        self.secret_calls: list = []
        self.notifications: "queue.Queue[dict]" = queue.Queue()
        self._answers: dict = {}
        self._cond = threading.Condition()
        self._next = 0
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _write(self, message: dict):
        body = json.dumps(message).encode()
        with self._write_lock:
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self._cond:
                        self._cond.notify_all()
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            message = json.loads(out.read(length))
            if "method" in message and "id" in message:
                self._answer_server(message)
            elif "method" in message:
                self.notifications.put(message)
            else:
                with self._cond:
                    self._answers[message["id"]] = message
                    self._cond.notify_all()

    def _answer_server(self, message: dict):
        method, params = message["method"], message.get("params") or {}
        self.secret_calls.append((method, params.get("key")))
        if method == "secrets/get":
            result = {"value": self.secrets.get(params["key"])}
        elif method == "secrets/store":
            self.secrets[params["key"]] = params["value"]
            result = None
        elif method == "secrets/delete":
            self.secrets.pop(params["key"], None)
            result = None
        else:
            self._write({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": method}})
            return
        self._write({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def send(self, method: str, params=None) -> int:
        with self._cond:
            self._next += 1
            rid = self._next
        self._write({"jsonrpc": "2.0", "id": rid, "method": method, "params": params if params is not None else {}})
        return rid

    def wait(self, rid: int, timeout: float = 120):
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no answer to request {rid}; stderr: {self.stderr_so_far()}")
                self._cond.wait(min(left, 0.5))
            answer = self._answers.pop(rid)
        if "error" in answer:
            raise RpcError(answer["error"])
        return answer.get("result")

    def request(self, method: str, params=None, timeout: float = 120):
        return self.wait(self.send(method, params), timeout)

    def notify(self, method: str, params=None):
        self._write({"jsonrpc": "2.0", "method": method, "params": params or {}})

    def next_notification(self, method: str, timeout: float = 60, where=lambda p: True) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} notification")
            try:
                n = self.notifications.get(timeout=left)
            except queue.Empty:
                continue
            if n["method"] == method and where(n["params"]):
                return n["params"]

    def stderr_so_far(self) -> str:
        return "" if self.proc.poll() is None else self.proc.stderr.read().decode(errors="replace")

    def close(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            try:
                self.request("shutdown", timeout=timeout)
                self.notify("exit")
            except (OSError, TimeoutError, RpcError):
                pass
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()
