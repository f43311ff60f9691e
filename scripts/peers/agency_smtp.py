#!/usr/bin/python3
"""An agency's capture server for interception tests: Debian's aiosmtpd on a loopback port,
STARTTLS with the given certificate (mail is refused before TLS), each message saved as
N.eml with N.json (envelope, TLS) in --dir. Prints AGENCY_PORT=n when it listens."""
import argparse, asyncio, json, os, socket, ssl, sys, time
import free_port, with_parent  # beside this script
from aiosmtpd.controller import Controller


class Save:
    def __init__(self, directory):
        self.directory, self.count = directory, 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, "%06d" % self.count)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "tls": session.ssl is not None}
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 kept"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0, help="0: a free one")
    a = p.parse_args()
    with_parent.exit_with_parent()
    port = a.port
    if port == 0:
        port = free_port.ports(1)[0]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(a.cert, a.key)
    controller = Controller(Save(a.dir), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True, decode_data=False)
    controller.start()
    print("AGENCY_PORT=%d" % port, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
