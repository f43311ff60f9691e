#!/usr/bin/python3
"""An HTTPS server for MTA-STS policies in tests: serves --root on ADDR:443 with the given
certificate (python3's http.server and ssl). Prints HTTPS_READY=ADDR when it listens."""
import argparse, functools, http.server, ssl


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    a = p.parse_args()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=a.root)
    httpd = http.server.ThreadingHTTPServer((a.addr, 443), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(a.cert, a.key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    print("HTTPS_READY=%s" % a.addr, flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
