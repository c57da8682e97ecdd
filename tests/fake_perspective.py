"""A small stand-in for the Perspective API on 127.0.0.1 (a thread), answering in the API's
format: ``{"attributeScores": {"TOXICITY": {"summaryScore": {"value": v}}}}``.

``script`` is a list of planned answers consumed one per request: ``"ok"`` (score the
text), or an HTTP status code (429, 500, 400, ...) answered with the API's JSON error
body.  When the script is exhausted every request is answered "ok".  Each request is
recorded (path, lower-cased headers, body) for the tests to inspect.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class FakePerspective:
    def __init__(self, score: Callable[[str], float], script: list | None = None, retry_after: str | None = "0"):
        self.score, self.script, self.retry_after = score, list(script or []), retry_after
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                plan = fake.script.pop(0) if fake.script else "ok"
                if plan == "ok":
                    value = fake.score(body["comment"]["text"])
                    self._send(200, {"attributeScores": {"TOXICITY": {
                        "spanScores": [], "summaryScore": {"value": value, "type": "PROBABILITY"}}},
                        "languages": body.get("languages", ["en"])})
                else:
                    headers = {"Retry-After": fake.retry_after} if plan == 429 and fake.retry_after else {}
                    self._send(plan, {"error": {"code": plan, "message": f"planned error {plan}",
                                                "status": "RESOURCE_EXHAUSTED" if plan == 429 else "ERROR"}}, headers)

            def _send(self, code: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1alpha1/comments:analyze"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakePerspective":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
