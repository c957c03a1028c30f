#!/usr/bin/env python3
"""A PEP 503 simple package index for the agent proofs (AgentProofTests), split like the public one: the index
pages on one host, the distribution files on another.

Usage: package-index.py LOGFILE WORKDIR INDEX_ADDRESS FILES_ADDRESS FILES_HOST PACKAGE MARKER
Builds one pure-Python wheel of PACKAGE 1.0 in WORKDIR (its module prints MARKER), then serves on port 80:
  INDEX_ADDRESS  /simple/ and /simple/<normalized name>/ (links to http://FILES_HOST/packages/<wheel>#sha256=...)
  FILES_ADDRESS  /packages/<wheel>
Every request is logged as "<host header> <path>".
"""
import base64
import hashlib
import http.server
import os
import re
import socket
import sys
import threading
import zipfile

log_path, workdir, index_address, files_address, files_host, package, marker = sys.argv[1:8]
module = re.sub(r"[-.]+", "_", package).lower()
normalized = re.sub(r"[-_.]+", "-", package).lower()
wheel_name = f"{module}-1.0-py3-none-any.whl"
wheel_path = os.path.join(workdir, wheel_name)
log_lock = threading.Lock()


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel():
    dist_info = f"{module}-1.0.dist-info"
    files = {
        f"{module}/__init__.py": f"MARKER = {marker!r}\n",
        f"{module}/__main__.py": f"from {module} import MARKER\nprint(MARKER)\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\nSummary: cagent test package\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: cagent-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/top_level.txt": f"{module}\n",
    }
    records = [record_line(name, text.encode()) for name, text in files.items()]
    records.append(f"{dist_info}/RECORD,,")
    with zipfile.ZipFile(wheel_path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")


build_wheel()
with open(wheel_path, "rb") as f:
    wheel_bytes = f.read()
wheel_sha = hashlib.sha256(wheel_bytes).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def respond(self, status, body, content_type="text/html", max_age=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if max_age is not None:
            # As the public index serves files (immutable, cached for a year): what puts them in pip's cache.
            self.send_header("Cache-Control", f"max-age={max_age}, public")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        local = self.connection.getsockname()[0]
        with log_lock, open(log_path, "a") as log:
            log.write(f"{self.headers.get('Host', '')} {self.path}\n")
        path = self.path.split("?")[0]
        if local == index_address and path == "/simple/":
            self.respond(200, f'<!DOCTYPE html><html><body><a href="/simple/{normalized}/">{normalized}</a></body></html>\n'.encode())
        elif local == index_address and path.rstrip("/") == f"/simple/{normalized}":
            link = f"http://{files_host}/packages/{wheel_name}#sha256={wheel_sha}"
            self.respond(200, f'<!DOCTYPE html><html><body><a href="{link}">{wheel_name}</a></body></html>\n'.encode())
        elif local == files_address and path == f"/packages/{wheel_name}":
            self.respond(200, wheel_bytes, "application/octet-stream", max_age=365000000)
        else:
            self.respond(404, b"not found\n", "text/plain")

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address):
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        super().__init__((address, 80), Handler)


servers = [Server(index_address), Server(files_address)]
threading.Thread(target=servers[1].serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
