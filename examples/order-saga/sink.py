#!/usr/bin/env python3
"""A stand-in for the services downstream of the order saga: prints every
CloudEvent the router forwards to it (binary mode) and answers 204.

    python3 examples/order-saga/sink.py [PORT]     # default 9000

Standard library only. Each event is one line: type, id, subject, the saga id
(correlationid), the event that caused it (causationid), then the data.
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        ce = {
            name: self.headers.get("ce-" + name, "-")
            for name in ("type", "id", "subject", "correlationid", "causationid")
        }
        print(
            f"{ce['type']}  id={ce['id']}  subject={ce['subject']}  "
            f"correlationid={ce['correlationid']}  causationid={ce['causationid']}\n"
            f"  {body.decode('utf-8', 'replace')}",
            flush=True,
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass  # one line per event is enough


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
