#!/usr/bin/env python3
"""netlab web server: one process serving plain HTTP on several addresses and ports of the simulated internet.

Usage: httpd.py LOGFILE PORT[,PORT...] ADDR [ADDR...]
Every response body names the address that answered and the Host header, so tests know which server spoke.
"""
import http.server
import socket
import sys
import threading

log_path, ports, addresses = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], sys.argv[3:]
log_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        local = self.connection.getsockname()[0]
        body = f"netlab-web {local} host={self.headers.get('Host', '')} path={self.path}\n".encode()
        with log_lock, open(log_path, "a") as log:
            log.write(f"{self.client_address[0]} -> {local}:{self.connection.getsockname()[1]} {self.path}\n")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, port):
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        super().__init__((address, port), Handler)


servers = [Server(a, p) for a in addresses for p in ports]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
