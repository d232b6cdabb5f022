"""The start command of a Jupyter image on kflow-testcluster (`start-notebook.py`, as the
jupyter/docker-stacks images name theirs).

When this Python can import jupyter_server, a real Jupyter Server, started the way Kubeflow's
images start it: port 8888, under $NB_PREFIX, no token, no password, any origin. Otherwise a
stand-in on the same port that answers what clients probe a notebook server for: `GET
$NB_PREFIX/api` (`{"version": ...}`), `$NB_PREFIX/api/status`, empty kernel and session lists,
and a page at `$NB_PREFIX/lab` (where `$NB_PREFIX/` redirects).

It listens on all addresses only inside a network namespace of the pod's own (nothing but
loopback there); a pod on the node's network listens on 127.0.0.1 alone.
"""

import datetime
import http.server
import json
import os
import sys

PORT = 8888
PREFIX = os.environ.get("NB_PREFIX", "").rstrip("/")
# The jupyter_server release whose REST API the stand-in answers like.
STAND_IN_VERSION = "2.14.2"


def listen_address():
    with open("/proc/net/dev") as f:
        interfaces = {line.split(":")[0].strip() for line in f.readlines()[2:]}
    return "0.0.0.0" if interfaces <= {"lo"} else "127.0.0.1"


def isoformat(t):
    return t.isoformat().replace("+00:00", "Z")


def real_server():
    from jupyter_server.serverapp import main

    sys.argv = [
        "jupyter-server",
        f"--ServerApp.base_url={PREFIX}/",
        f"--ServerApp.ip={listen_address()}",
        f"--ServerApp.port={PORT}",
        # A pod's port is its own: never move to another one.
        "--ServerApp.port_retries=0",
        "--ServerApp.token=",
        "--ServerApp.password=",
        "--ServerApp.allow_origin=*",
        "--ServerApp.allow_remote_access=True",
        "--ServerApp.allow_root=True",
        f"--ServerApp.root_dir={os.getcwd()}",
        "--ServerApp.open_browser=False",
    ]
    return main()


STARTED = datetime.datetime.now(datetime.timezone.utc)
PAGE = """<!DOCTYPE html>
<html><head><title>JupyterLab</title></head>
<body><p>Jupyter Server stand-in of kflow-testcluster at {prefix}/ (jupyter_server is not
installed in this image).</p></body></html>
"""


class StandIn(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, code, body, content_type="application/json", headers=()):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            return self.answer(404, json.dumps({"message": "Not Found", "reason": None}))
        rel = path[len(PREFIX):].rstrip("/")
        if rel == "/api":
            return self.answer(200, json.dumps({"version": STAND_IN_VERSION}))
        if rel == "/api/status":
            now = isoformat(datetime.datetime.now(datetime.timezone.utc))
            status = {"connections": 0, "kernels": 0, "last_activity": now, "started": isoformat(STARTED)}
            return self.answer(200, json.dumps(status))
        if rel in ("/api/kernels", "/api/sessions", "/api/terminals"):
            return self.answer(200, "[]")
        if rel == "":
            return self.answer(302, "", "text/html", [("Location", f"{PREFIX}/lab")])
        if rel in ("/lab", "/tree"):
            return self.answer(200, PAGE.format(prefix=PREFIX), "text/html; charset=UTF-8")
        return self.answer(404, json.dumps({"message": "Not Found", "reason": None}))

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        t = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        sys.stderr.write(f"[I {t} ServerApp] {fmt % args}\n")


def stand_in():
    address = listen_address()
    server = http.server.ThreadingHTTPServer((address, PORT), StandIn)
    t = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    sys.stderr.write(
        f"[I {t} ServerApp] Jupyter Server stand-in (kflow-testcluster; jupyter_server is not "
        f"installed) is running at: http://{os.environ.get('HOSTNAME', 'localhost')}:{PORT}{PREFIX}/\n"
    )
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    try:
        import jupyter_server  # noqa: F401
    except ImportError:
        stand_in()
    else:
        sys.exit(real_server())
