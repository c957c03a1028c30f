#!/usr/bin/env python3
"""An npm registry for the agent proofs (AgentProofTests): one package, its metadata and its tarball.

Usage: npm-registry.py LOGFILE ADDRESS HOST PACKAGE MARKER
Builds PACKAGE 1.0.0 (its index.js prints MARKER) and serves on ADDRESS port 80:
  /PACKAGE                          the packument (tarball URL http://HOST/PACKAGE/-/PACKAGE-1.0.0.tgz, sha1 and sha512)
  /PACKAGE/-/PACKAGE-1.0.0.tgz      the tarball
Everything else (audit, other packages) is 404. Every request is logged as "<method> <host header> <path>".
"""
import base64
import hashlib
import http.server
import io
import json
import socket
import sys
import tarfile
import threading

log_path, address, host, package, marker = sys.argv[1:6]
log_lock = threading.Lock()


def build_tarball():
    files = {
        "package/package.json": json.dumps({"name": package, "version": "1.0.0", "main": "index.js"}),
        "package/index.js": f"console.log({json.dumps(marker)});\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


tarball = build_tarball()
tarball_path = f"/{package}/-/{package}-1.0.0.tgz"
packument = {
    "_id": package, "name": package, "dist-tags": {"latest": "1.0.0"},
    "versions": {"1.0.0": {
        "name": package, "version": "1.0.0", "main": "index.js",
        "dist": {"tarball": f"http://{host}{tarball_path}", "shasum": hashlib.sha1(tarball).hexdigest(),
                 "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()},
    }},
}


class Handler(http.server.BaseHTTPRequestHandler):
    def respond(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        with log_lock, open(log_path, "a") as log:
            log.write(f"{self.command} {self.headers.get('Host', '')} {self.path}\n")
        length = int(self.headers.get("Content-Length", "0") or "0")
        if length:
            self.rfile.read(length)
        path = self.path.split("?")[0]
        if self.command == "GET" and path == f"/{package}":
            self.respond(200, json.dumps(packument).encode(), "application/json")
        elif self.command == "GET" and path == tarball_path:
            self.respond(200, tarball, "application/octet-stream")
        else:
            self.respond(404, b'{"error":"not found"}', "application/json")

    do_GET = handle_any
    do_POST = handle_any
    do_HEAD = handle_any

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6 if ":" in address else socket.AF_INET


server = Server((address, 80), Handler)
print("ready", flush=True)
server.serve_forever()
