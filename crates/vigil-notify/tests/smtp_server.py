#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for vigil-notify's integration tests.

Listens on 127.0.0.1 on a port the OS picks, prints ``LISTENING <port>`` on
stdout once it accepts connections, and stores each accepted message as
``<outdir>/NNNN.json`` (envelope, decoded headers and text body, whether the
session was encrypted and who authenticated). Exits when its stdin closes, so
it never outlives the test process that started it.

Recipients steer the replies: ``reject-permanent@...`` gets 550,
``reject-transient@...`` gets 451, anyone else is accepted.

    smtp_server.py OUTDIR [--starttls CERT KEY | --implicit-tls CERT KEY]
                          [--auth USER:PASSWORD] [--port N]
"""

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys
import threading
from email import policy
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "reject-permanent":
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
        if local == "reject-transient":
            return "451 4.3.0 <%s>: Temporary failure, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        body = msg.get_body(preferencelist=("plain",))
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "headers": {k: str(v) for k, v in msg.items()},
            "body": body.get_content() if body is not None else None,
            # STARTTLS sets session.ssl; implicit TLS shows on the transport.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": session.auth_data if session.authenticated else None,
        }
        final = os.path.join(self.outdir, "%04d.json" % self.count)
        tmp = final + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, final)
        return "250 2.0.0 Ok: queued as VIGILTEST%d" % self.count


def make_authenticator(user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        ):
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    return authenticator


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def exit_when_stdin_closes():
    try:
        sys.stdin.read()
    finally:
        os._exit(0)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("outdir")
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--auth", metavar="USER:PASSWORD")
    parser.add_argument("--port", type=int, default=0, help="default: one the OS picks")
    args = parser.parse_args()

    handler = Handler(args.outdir)
    starttls_ctx = tls_context(*args.starttls) if args.starttls else None
    implicit_ctx = tls_context(*args.implicit_tls) if args.implicit_tls else None
    authenticator = None
    if args.auth:
        user, password = args.auth.split(":", 1)
        authenticator = make_authenticator(user, password)

    def factory():
        return SMTP(
            handler,
            hostname="vigil-test-smtp",
            tls_context=starttls_ctx,
            require_starttls=starttls_ctx is not None,
            authenticator=authenticator,
            auth_required=authenticator is not None,
            # AUTH over a plain connection only when no TLS is configured at all.
            auth_require_tls=starttls_ctx is not None,
            timeout=30,
        )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(16)
    port = sock.getsockname()[1]
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, sock=sock, ssl=implicit_ctx)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print("LISTENING %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
