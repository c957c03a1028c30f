#!/usr/bin/env python3
"""The demo's simulated internet: one process answering plain HTTP on port 80 of several addresses.

Usage: server.py LOGDIR MODEL_ADDR FILES_ADDR... -- ATTACKER_ADDR
- MODEL_ADDR: the agent's "model API" (POST /v1/chat answers a JSON reply);
- FILES_ADDR: static files from LOGDIR/www (a git repository for git's dumb HTTP, a package tarball);
- ATTACKER_ADDR: accepts everything and appends each request (method, path, body) to LOGDIR/attacker.log.
Prints "ready" once every address listens.
"""
import functools
import http.server
import json
import sys
import threading

log_dir = sys.argv[1]
split = sys.argv.index("--")
model, files, attackers = sys.argv[2], sys.argv[3:split], sys.argv[split + 1:]
lock = threading.Lock()


class Handler(http.server.SimpleHTTPRequestHandler):
    def local(self):
        return self.connection.getsockname()[0]

    def attacker(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        with lock, open(log_dir + "/attacker.log", "a") as log:
            log.write(f"{self.command} {self.headers.get('Host', '')}{self.path} {body}\n")
        self.reply(200, b"thanks\n", "text/plain")

    def reply(self, status, body, kind):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.local() in attackers:
            return self.attacker()
        if self.local() == model and self.path == "/v1/chat":
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            answer = {"reply": f"Plan for '{request.get('task', '')}': clone the project, fetch its tool, run the tests."}
            return self.reply(200, json.dumps(answer).encode() + b"\n", "application/json")
        self.reply(404, b"not found\n", "text/plain")

    def do_GET(self):
        if self.local() in attackers:
            return self.attacker()
        if self.local() in files:
            return super().do_GET()
        self.reply(404, b"not found\n", "text/plain")

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


handler = functools.partial(Handler, directory=log_dir + "/www")
servers = [Server((address, 80), handler) for address in [model] + files + attackers]
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
