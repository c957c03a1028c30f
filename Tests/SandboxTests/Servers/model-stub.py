#!/usr/bin/env python3
"""A stub OpenAI-compatible model server for the agent proofs (AgentProofTests).

Usage: model-stub.py LOGFILE REPLIES ADDRESS PORT
REPLIES is a JSON list of [trigger, reply]: the first trigger found in the request's last user message picks the
reply (the last entry's trigger "" matches everything). Answers POST /v1/chat/completions, streamed (server-sent
events) when the request asks for it, else one JSON object; GET /v1/models lists one model.
The API key is checked against the environment's STUB_EXPECTED_KEY and never written anywhere: the log says
only auth=ok or auth=bad.
"""
import http.server
import json
import os
import socket
import sys
import threading
import time

log_path, replies_path, address, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
expected_key = os.environ.get("STUB_EXPECTED_KEY", "")
log_lock = threading.Lock()


def log(line):
    with log_lock, open(log_path, "a") as f:
        f.write(line + "\n")


def last_user_text(messages):
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content or ""
    return ""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def auth(self):
        header = self.headers.get("Authorization", "")
        return "ok" if expected_key and header == "Bearer " + expected_key else "bad"

    def send_json(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        log(f"GET {self.path} auth={self.auth()}")
        if self.path.rstrip("/").endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "stub-model", "object": "model", "owned_by": "stub"}]})
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        auth = self.auth()
        text = last_user_text(request.get("messages", []))
        with open(replies_path) as f:
            replies = json.load(f)
        trigger, reply = next(((t, r) for t, r in replies if t in text), ("", "I have nothing to change."))
        stream = bool(request.get("stream"))
        log(f"POST {self.path} auth={auth} stream={stream} trigger={trigger!r}")
        if auth != "ok":
            self.send_json(401, {"error": {"message": "invalid api key", "type": "invalid_request_error", "code": "invalid_api_key"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self.send_json(404, {"error": {"message": "not found"}})
            return
        created = int(time.time())
        model = request.get("model", "stub-model")
        usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        if not stream:
            self.send_json(200, {"id": "chatcmpl-stub", "object": "chat.completion", "created": created, "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                              "finish_reason": "stop"}], "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        chunks = [reply[i:i + 40] for i in range(0, len(reply), 40)] or [""]
        events = [{"role": "assistant", "content": ""}] + [{"content": c} for c in chunks]
        for index, delta in enumerate(events):
            chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        final = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
        self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6 if ":" in address else socket.AF_INET


server = Server((address, port), Handler)
print("ready", flush=True)
server.serve_forever()
