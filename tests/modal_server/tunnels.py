"""Sandboxes' tunnels: the ports a sandbox declared in ``encrypted_ports``, reachable over TLS.

Modal gives each such port an https endpoint of its own (a host name of Modal's, port 443)
that ends TLS and passes the bytes on to the port in the container. Here each is a TLS
listener on this machine's 127.0.0.1, named ``localhost`` and on a port of its own, with a
certificate of this server's own certificate authority (``TunnelAuthority.ca_file``: a
client that trusts it checks the name as it would Modal's), that passes the bytes on to the
container's address. Like Modal's, a tunnel is made for the sandbox (at its first request for
tunnels, which is when the SDK first asks) and goes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modal_proto import api_pb2

if TYPE_CHECKING:
    from .server import ModalServer
    from .state import Sandbox

TUNNEL_HOST = "localhost"


class TunnelAuthority:
    """The certificate authority of this server's tunnels, and the TLS context they serve with."""

    def __init__(self, directory: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local Modal tunnels CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        names = x509.SubjectAlternativeName([x509.DNSName(TUNNEL_HOST),
                                             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        certificate = (x509.CertificateBuilder()
                       .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TUNNEL_HOST)]))
                       .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + datetime.timedelta(days=1))
                       .add_extension(names, critical=False).sign(ca_key, hashes.SHA256()))
        self.ca_file = directory / "tunnels-ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        chain = directory / "tunnel.pem"
        chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM)
                          + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(chain)


async def tunnels_of(server: ModalServer, sandbox: Sandbox) -> list[api_pb2.TunnelData]:
    """The sandbox's tunnels, made at the first asking: one per port it declared encrypted."""
    ports = [spec.port for spec in sandbox.definition.open_ports.ports if not spec.unencrypted]
    if ports and not sandbox.tunnels and sandbox.running:
        address = await asyncio.to_thread(_container_address, server, sandbox)
        for port in ports:
            listener = await asyncio.start_server(
                lambda reader, writer, port=port: _pass_on(reader, writer, address, port),
                "127.0.0.1", 0, ssl=server.tunnel_authority.context)
            sandbox.tunnels[port] = listener
    return [api_pb2.TunnelData(host=TUNNEL_HOST, port=listener.sockets[0].getsockname()[1], container_port=port)
            for port, listener in sandbox.tunnels.items()]


def close_tunnels(sandbox: Sandbox) -> None:
    for listener in sandbox.tunnels.values():
        listener.close()
    sandbox.tunnels.clear()


def _container_address(server: ModalServer, sandbox: Sandbox) -> str:
    details: dict[str, Any] = server.docker.api.inspect_container(sandbox.container)
    if details["HostConfig"].get("NetworkMode") == "host":
        return "127.0.0.1"
    networks = details["NetworkSettings"].get("Networks") or {}
    return next((network["IPAddress"] for network in networks.values() if network.get("IPAddress")), "127.0.0.1")


async def _pass_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str, port: int) -> None:
    """One connection through a tunnel: to the container's port, both ways until either ends
    (nothing listening there: the connection ends, as Modal's does)."""
    try:
        inner_reader, inner_writer = await asyncio.open_connection(address, port)
    except OSError:
        writer.close()
        return

    async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(1 << 16):
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(OSError, RuntimeError):
            sink.close()

    await asyncio.gather(copy(reader, inner_writer), copy(inner_reader, writer))
