"""Stand-in for the example's webhooks (Notifier, file uploader, API, Sync Worker).

Prints one line per CloudEvent the router forwards: path, type, correlation id,
data. Answers 200, or the status given as the second argument (to see retries
and dead letters). Usage: python3 webhooks.py [PORT] [STATUS]
"""

import http.server
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
STATUS = int(sys.argv[2]) if len(sys.argv) > 2 else 200


class Webhook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode(errors="replace")
        print(
            self.path,
            self.headers.get("ce-type"),
            f"correlationid={self.headers.get('ce-correlationid')}",
            body,
            flush=True,
        )
        self.send_response(STATUS)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", PORT), Webhook).serve_forever()
