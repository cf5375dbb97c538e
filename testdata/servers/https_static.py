"""Serves a directory over HTTPS (the standard library's server and ssl module): client
metadata documents for the authorization-server tests.

usage: https_static.py PORT CERT KEY DIR
"""

import functools
import http.server
import ssl
import sys

port, cert, key, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {".json": "application/json", "": "application/octet-stream"}

    def log_message(self, *args) -> None:  # quiet
        pass


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=root))
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
