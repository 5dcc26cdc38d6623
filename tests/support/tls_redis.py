"""A private Redis that speaks TLS only, with a throwaway certificate authority.

:func:`certificate_authority` makes a CA and a server certificate it signed (for
``127.0.0.1`` and ``localhost``) with the ``cryptography`` package, as PEM files;
:func:`tls_redis` starts ``redis-server`` with its plain port closed and TLS on a free
port, clients not asked for a certificate (``--tls-auth-clients no``), nothing saved.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.outages import free_port


@dataclass(frozen=True)
class Authority:
    """A CA's certificate (``ca``) and a server's certificate and key it signed."""

    ca: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificate_authority(directory: Path, name: str = "baitiao test CA") -> Authority:
    """A new CA under ``directory`` and a server certificate for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("redis"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    authority = Authority(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    authority.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    authority.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    authority.server_key.write_bytes(_pem_key(server_key))
    authority.server_key.chmod(0o600)
    return authority


def _answers_tls(port: int, ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"PING\r\n")
                return tls.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def tls_redis(authority: Authority, log: Path) -> Iterator[int]:
    """A ``redis-server`` listening for TLS only on a free port (yielded), stopped after."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed"
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                server,
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--tls-port",
                str(port),
                "--tls-cert-file",
                str(authority.server_cert),
                "--tls-key-file",
                str(authority.server_key),
                "--tls-ca-cert-file",
                str(authority.ca),
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--databases",
                "4",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while not _answers_tls(port, authority.ca):
            assert process.poll() is None, f"redis-server exited ({process.returncode}); see {log}"
            assert time.monotonic() < deadline, f"redis-server did not answer over TLS on {port}; see {log}"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
