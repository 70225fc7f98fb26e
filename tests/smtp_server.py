"""An SMTP server for tests and the demo: aiosmtpd with STARTTLS required and AUTH.

Runs on the caller's event loop (no thread), counts connections (open now, most at once,
total) so tests can check a client's pool, keeps every accepted message parsed, and refuses
chosen recipients at RCPT or DATA with a given reply (``450 4.2.1 …``, ``550 5.1.1 …``) for the
next N attempts or forever. ``make_certificate`` makes a throwaway self-signed certificate for
127.0.0.1 with the ``openssl`` command.

Faults of the relay itself, switchable while it runs: ``stall = "greeting"`` accepts TCP and
never says a word (a tarpit), ``stall = "auth"`` goes silent at AUTH; ``stall = None`` ends
both (stalled sessions are closed). A wrong ``password`` makes every login fail with 535.

Run it on its own for the demo: ``python -m tests.smtp_server --port 8025``.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import ssl
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``127.0.0.1`` / ``localhost``."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class Received:
    at: float
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    peer: Any


@dataclass
class SmtpTestServer:
    cert: Path
    key: Path
    username: str = "cartpulse"
    password: str = "smtp-secret"
    messages: list[Received] = field(default_factory=list)
    open_connections: int = 0
    max_connections: int = 0
    total_connections: int = 0
    refused_logins: int = 0  # not ``auth_…``: aiosmtpd would offer that name as a mechanism
    port: int = 0
    implicit_tls: bool = False  # TLS from the first byte (port 465 style) instead of STARTTLS
    stall: Literal["greeting", "auth"] | None = None
    stalled: int = 0  # sessions that met a stall
    _sessions: list[asyncio.BaseTransport] = field(default_factory=list)
    _refusals: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _unstall: asyncio.Event = field(default_factory=asyncio.Event)

    def refuse(
        self, address: str, reply: str, stage: str = "rcpt", times: int | None = None
    ) -> None:
        """Answer ``reply`` at ``stage`` (``rcpt`` or ``data``) for ``address``."""
        self._refusals[(stage, address)] = [reply, times]

    def _refusal(self, stage: str, addresses: list[str]) -> str | None:
        for address in addresses:
            planned = self._refusals.get((stage, address))
            if planned is None:
                continue
            reply, left = planned
            if left is None:
                return str(reply)
            if left > 0:
                planned[1] = left - 1
                return str(reply)
        return None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))
        owner = self

        class CountingSMTP(SMTP):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                if not getattr(self, "_counted", False):  # STARTTLS calls this again
                    self._counted = True
                    owner.open_connections += 1
                    owner.total_connections += 1
                    owner.max_connections = max(owner.max_connections, owner.open_connections)
                    owner._sessions.append(transport)
                super().connection_made(transport)

            async def smtp_AUTH(self, arg: str) -> None:
                if owner.stall == "auth":
                    owner.stalled += 1
                    await owner._unstall.wait()  # silent until the fault ends
                    self.transport.close()  # type: ignore[union-attr]
                    return
                await super().smtp_AUTH(arg)

            def connection_lost(self, exc: Exception | None) -> None:
                if getattr(self, "_counted", False) and not getattr(self, "_lost", False):
                    self._lost = True
                    owner.open_connections -= 1
                super().connection_lost(exc)

        class Tarpit(asyncio.Protocol):
            """Accepts the connection and never says a word."""

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                owner.stalled += 1
                owner._sessions.append(transport)

        def factory() -> asyncio.Protocol:
            if self.stall == "greeting":
                return Tarpit()
            with warnings.catch_warnings():
                # With implicit TLS the socket is TLS from the start, but aiosmtpd only knows
                # STARTTLS as "TLS" and warns that AUTH would go in the clear. It does not.
                warnings.simplefilter("ignore", UserWarning)
                return CountingSMTP(
                    self,
                    hostname="localhost",
                    tls_context=None if self.implicit_tls else context,
                    require_starttls=not self.implicit_tls,
                    auth_required=True,
                    auth_require_tls=not self.implicit_tls,
                    authenticator=self._authenticate,
                )

        self._server = await asyncio.get_running_loop().create_server(
            factory, host, port, ssl=context if self.implicit_tls else None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def end_stall(self) -> None:
        """The relay works again: stalled sessions are closed, new ones are served."""
        self.stall = None
        self._unstall.set()
        self.drop_connections()

    def drop_connections(self) -> None:
        """Close every client connection, as a relay does with idle ones."""
        for transport in self._sessions:
            transport.close()
        self._sessions.clear()

    async def stop(self) -> None:
        self._unstall.set()
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        if not ok:
            self.refused_logins += 1
        # handled=False: aiosmtpd answers (235, or 535 5.7.8) instead of leaving it to us
        return AuthResult(success=ok, handled=False)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if (reply := self._refusal("rcpt", [address])) is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if (reply := self._refusal("data", list(envelope.rcpt_tos))) is not None:
            return reply
        raw = bytes(envelope.original_content or b"")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self.messages.append(
            Received(
                time.time(),
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                raw,
                message,  # type: ignore[arg-type]  # policy.default parses to EmailMessage
                session.peer,
            )
        )
        return f"250 2.0.0 queued as {len(self.messages)}"


async def _serve(port: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        cert, key = make_certificate(Path(directory))
        server = SmtpTestServer(cert, key)
        await server.start(port=port)
        print(f"SMTP test server on 127.0.0.1:{port}, CA file {cert}")  # noqa: T201
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="SMTP test server (STARTTLS + AUTH)")
    parser.add_argument("--port", type=int, default=8025)
    asyncio.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
