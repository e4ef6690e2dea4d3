"""HTTPS for listeners whose address is ``https://``, from TorchServe's ``private_key_file`` + ``certificate_file``.

* Both files are PEM: an unencrypted private key (PKCS#8 or traditional RSA/EC) and the certificate chain, leaf
  first. TLS 1.2 is the minimum; TLS 1.3 is offered too (TorchServe speaks TLS 1.2 only, with two ECDHE-RSA
  ciphers), with Python's default cipher list.
* ``https://`` without key files: like TorchServe, the server makes a self-signed certificate at start (an EC P-256
  key, ``CN=localhost``, valid for a year, its SHA-256 fingerprint logged) when the ``cryptography`` package is
  installed; without it, startup stops and says to configure the key files.
* ``keystore`` (a Java keystore) is not supported: with an ``https://`` address that is a startup error naming the
  key; without one it is ignored with a warning, as TorchServe ignores it.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .config import Address, ConfigError, ServerConfig

__all__ = ["check_config", "server_context", "tls_addresses"]

logger = logging.getLogger("modelserver.tls")

KEY_FILE = "private_key_file"
CERT_FILE = "certificate_file"
KEYSTORE = "keystore"


def tls_addresses(config: ServerConfig) -> list[Address]:
    return [a for a in (config.inference_address, config.management_address, config.metrics_address) if a.is_tls]


def check_config(config: ServerConfig) -> None:
    """Raise ConfigError for TLS settings that cannot work; cheap (no key is loaded or made)."""
    properties = config.properties
    needed = bool(tls_addresses(config))
    if properties.get(KEYSTORE):
        if needed:
            raise ConfigError(
                f"{KEYSTORE}: Java keystores are not supported; convert it to PEM files "
                f"(openssl pkcs12 -in store.p12 -nodes) and set {KEY_FILE} and {CERT_FILE}"
            )
        logger.warning("%s is set but no address is https://; it is ignored", KEYSTORE)
    key, cert = properties.get(KEY_FILE), properties.get(CERT_FILE)
    if not needed:
        return
    if bool(key) != bool(cert):
        missing = CERT_FILE if key else KEY_FILE
        raise ConfigError(f"{missing}: must be set together with {KEY_FILE if key else CERT_FILE} for https://")
    for name, value in ((KEY_FILE, key), (CERT_FILE, cert)):
        if value and not os.path.isfile(value):
            raise ConfigError(f"{name}: {value!r} does not exist or is not a file")
    if not key and not _have_cryptography():
        raise ConfigError(
            f"an https:// address needs {KEY_FILE} and {CERT_FILE} (PEM files); a self-signed certificate can only "
            "be made when the 'cryptography' package is installed"
        )


def server_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The server-side SSL context for the ``https://`` listeners, or None when there are none."""
    addresses = tls_addresses(config)
    if not addresses:
        return None
    check_config(config)
    key, cert = config.properties.get(KEY_FILE), config.properties.get(CERT_FILE)
    if key and cert:
        return _context(cert, key)
    hosts = sorted({a.host for a in addresses} | {"localhost", "127.0.0.1", socket.gethostname()})
    return _self_signed_context(hosts)


def _context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except ssl.SSLError as err:
        if "KEY_TOO_SMALL" not in str(err):
            raise ConfigError(f"{CERT_FILE} {cert!r} / {KEY_FILE} {key!r}: cannot load the key pair: {err}") from None
        return _small_key_context(cert, key)
    except OSError as err:
        raise ConfigError(f"{CERT_FILE} {cert!r} / {KEY_FILE} {key!r}: cannot load the key pair: {err}") from None
    return context


def _small_key_context(cert: str, key: str) -> ssl.SSLContext:
    """Serve a key below OpenSSL's default security level (2: 2048-bit RSA) as TorchServe's Java stack does.

    Java accepts RSA keys from 1024 bits (TorchServe's own test key pair is one); OpenSSL's security level 1 draws
    the same line, so smaller keys are still refused.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("DEFAULT:@SECLEVEL=1")
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"{CERT_FILE} {cert!r} / {KEY_FILE} {key!r}: cannot load the key pair: {err}") from None
    logger.warning(
        "%s %r holds a %s key, weaker than OpenSSL's default minimum (2048-bit RSA, 224-bit EC); serving it as "
        "TorchServe does. Replace it, e.g. openssl req -x509 -newkey rsa:3072 -nodes -keyout key.pem -out cert.pem",
        KEY_FILE,
        key,
        _describe_key(key),
    )
    return context


def _describe_key(path: str) -> str:
    """``'1024-bit RSA'``, or ``'small'`` when the ``cryptography`` package cannot tell."""
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        private_key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except Exception:
        return "small"
    name = type(private_key).__name__
    kind = "RSA" if "RSA" in name else "EC" if "Elliptic" in name else name
    return f"{getattr(private_key, 'key_size', '?')}-bit {kind}"


def _have_cryptography() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def _self_signed_context(hosts: Iterable[str]) -> ssl.SSLContext:
    cert_pem, key_pem, fingerprint = self_signed_certificate(hosts)
    with tempfile.TemporaryDirectory(prefix="modelserver-tls-") as directory:  # mode 0700
        cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert.write_bytes(cert_pem)
        fd = os.open(key, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key_pem)
        context = _context(str(cert), str(key))
    logger.warning(
        "https:// without %s/%s: serving a self-signed certificate (SHA-256 fingerprint %s); "
        "configure real key files for production",
        KEY_FILE,
        CERT_FILE,
        fingerprint,
    )
    return context


def self_signed_certificate(hosts: Iterable[str], days: int = 365) -> tuple[bytes, bytes, str]:
    """A self-signed certificate for ``hosts`` (DNS names or IP addresses): (cert PEM, key PEM, SHA-256 hex)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex(":")
    return cert_pem, key_pem, fingerprint
