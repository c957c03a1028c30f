#!/usr/bin/env python3
"""netlab attacker sink: accepts every TCP connection and UDP datagram on the attacker's addresses and logs it.

Usage: sink.py LOGFILE TCPPORTS UDPPORTS ADDR [ADDR...]
(A packet capture beside it records every packet, ICMP included; this side makes connections succeed, so a
probe that gets through is seen as data, not only as a SYN.)
"""
import select
import socket
import sys
import threading

log_path = sys.argv[1]
tcp_ports = [int(p) for p in sys.argv[2].split(",") if p]
udp_ports = [int(p) for p in sys.argv[3].split(",") if p]
addresses = sys.argv[4:]
lock = threading.Lock()


def log(line):
    with lock, open(log_path, "a") as f:
        f.write(line + "\n")


sockets = []
for address in addresses:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for port in tcp_ports:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        s.listen(64)
        sockets.append(("tcp", s))
    for port in udp_ports:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((address, port))
        sockets.append(("udp", s))


def serve_tcp(conn, peer, local):
    conn.settimeout(2)
    data = b""
    try:
        data = conn.recv(4096)
    except OSError:
        pass
    log(f"tcp {peer[0]} -> {local[0]}:{local[1]} {data[:200]!r}")
    try:
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nsink\n")
    except OSError:
        pass
    conn.close()


print("ready", flush=True)
by_fd = {s.fileno(): (kind, s) for kind, s in sockets}
while True:
    readable, _, _ = select.select([s for _, s in sockets], [], [])
    for s in readable:
        kind, sock = by_fd[s.fileno()]
        if kind == "tcp":
            conn, peer = sock.accept()
            threading.Thread(target=serve_tcp, args=(conn, peer, conn.getsockname()), daemon=True).start()
        else:
            data, peer = sock.recvfrom(65535)
            local = sock.getsockname()
            log(f"udp {peer[0]} -> {local[0]}:{local[1]} {data[:200]!r}")
