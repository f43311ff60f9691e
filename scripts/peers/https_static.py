#!/usr/bin/python3
"""An HTTPS server for MTA-STS policies and TLS reports in tests: serves --root on ADDR:443 with
the given certificate (python3's http.server and ssl); a POST's body is kept as
ROOT/posted/N.bin (with its Content-Type in N.type) and answered 201. Prints HTTPS_READY=ADDR
when it listens."""
import argparse, functools, http.server, os, ssl
import with_parent  # beside this script


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        posted = os.path.join(self.directory, "posted")
        os.makedirs(posted, exist_ok=True)
        n = len([f for f in os.listdir(posted) if f.endswith(".bin")])
        with open(os.path.join(posted, "%d.type" % n), "w") as f:
            f.write(self.headers.get("Content-Type", ""))
        with open(os.path.join(posted, "%d.bin" % n), "wb") as f:
            f.write(body)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    a = p.parse_args()
    with_parent.exit_with_parent()
    handler = functools.partial(Handler, directory=a.root)
    httpd = http.server.ThreadingHTTPServer((a.addr, 443), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(a.cert, a.key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    print("HTTPS_READY=%s" % a.addr, flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
