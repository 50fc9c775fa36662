"""Certificates and RSA keys for the test registries, made with ``openssl``.

:func:`self_signed` makes a certificate that is its own CA (``subjectAltName`` IP:127.0.0.1
and DNS:localhost, DNS:registry.test by default).  :class:`RSAKey` reads the numbers of a
PEM private key (through ``openssl rsa -outform DER``) so the token server can sign RS256
JWTs in pure Python, without any crypto package.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tests.peers import run

DEFAULT_SANS = ("IP:127.0.0.1", "DNS:localhost", "DNS:registry.test")


@dataclass(frozen=True)
class CertPair:
    cert: Path  # PEM certificate (also the CA that verifies it)
    key: Path  # PEM private key, unencrypted

    def der(self) -> bytes:
        """The certificate in DER (for a JWT ``x5c`` header)."""
        return run("openssl", "x509", "-in", self.cert, "-outform", "DER", text=False).stdout  # type: ignore[no-any-return]


def self_signed(
    directory: Path,
    name: str,
    *,
    cn: str = "127.0.0.1",
    sans: tuple[str, ...] = DEFAULT_SANS,
    days: int = 2,
) -> CertPair:
    """``directory/name.crt`` + ``directory/name.key``: a 2048-bit RSA self-signed certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    args = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-keyout", str(key), "-out", str(cert), "-days", str(days), "-subj", f"/CN={cn}",
    ]
    if sans:
        args += ["-addext", "subjectAltName=" + ",".join(sans)]
    run(*args)
    return CertPair(cert, key)


def signed_by(directory: Path, name: str, ca: CertPair, *, cn: str = "ctrpy-client", days: int = 2) -> CertPair:
    """A certificate for ``cn`` signed by ``ca`` (a TLS client certificate)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, csr = directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr"
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
    ext = directory / f"{name}.ext"
    ext.write_text("extendedKeyUsage=clientAuth\n")
    run(
        "openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(cert), "-days", str(days), "-sha256", "-extfile", str(ext),
    )
    return CertPair(cert, key)


# ---------------------------------------------------------------------------------------------
# RSA signing (PKCS#1 v1.5, SHA-256) from the key's numbers


def _der_length(data: bytes, i: int) -> tuple[int, int]:
    first = data[i]
    if first < 0x80:
        return first, i + 1
    n = first & 0x7F
    return int.from_bytes(data[i + 1 : i + 1 + n], "big"), i + 1 + n


def _der_integers(data: bytes) -> list[int]:
    """The INTEGERs of a DER ``SEQUENCE { INTEGER... }`` (an RSAPrivateKey)."""
    if data[0] != 0x30:
        raise ValueError("not a DER SEQUENCE")
    _, i = _der_length(data, 1)
    out = []
    while i < len(data):
        if data[i] != 0x02:
            raise ValueError("expected a DER INTEGER")
        n, i = _der_length(data, i + 1)
        out.append(int.from_bytes(data[i : i + n], "big"))
        i += n
    return out


_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


@dataclass(frozen=True)
class RSAKey:
    n: int
    e: int
    d: int

    @classmethod
    def from_pem(cls, path: Path) -> RSAKey:
        der = run("openssl", "rsa", "-in", path, "-outform", "DER", "-traditional", text=False).stdout
        version, n, e, d, *_ = _der_integers(der)
        if version != 0:
            raise ValueError("unsupported RSA key version")
        return cls(n, e, d)

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8

    def sign_sha256(self, message: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 (the JWT ``RS256`` algorithm)."""
        t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        k = self.size
        em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
        return pow(int.from_bytes(em, "big"), self.d, self.n).to_bytes(k, "big")

    def verify_sha256(self, message: bytes, signature: bytes) -> bool:
        t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        k = self.size
        em = pow(int.from_bytes(signature, "big"), self.e, self.n).to_bytes(k, "big")
        return em == b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
