#!/usr/bin/python3
"""A receiving MTA of the test internet: Debian's aiosmtpd on ADDR:25, offering STARTTLS with the
given certificate (plain SMTP allowed too), or no STARTTLS without one. Each message is saved as
N.eml with N.json (envelope, whether TLS was on) in --dir. With --refuse CODE every RCPT gets
that reply; with --rcpt-delay S each RCPT is answered after S seconds. Prints MX_READY=ADDR when it listens."""
import argparse, asyncio, json, os, ssl, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
import with_parent  # beside this script


class Save:
    def __init__(self, directory, refuse, rcpt_delay):
        self.directory, self.count, self.refuse, self.rcpt_delay = directory, 0, refuse, rcpt_delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_delay:
            open(os.path.join(self.directory, "rcpt-seen"), "a").close()
            await asyncio.sleep(self.rcpt_delay)
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, "%06d" % self.count)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "tls": session.ssl is not None, "peer": session.peer[0], "port": session.peer[1]}
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Ok: queued as %d" % self.count


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--refuse")
    p.add_argument("--rcpt-delay", type=float, default=0)
    a = p.parse_args()
    with_parent.exit_with_parent()
    context = None
    if a.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)
    controller = Controller(Save(a.dir, a.refuse, a.rcpt_delay), hostname=a.addr, port=25, tls_context=context, require_starttls=False, decode_data=False, ident="mx.test ESMTP")
    controller.start()
    print("MX_READY=%s" % a.addr, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
