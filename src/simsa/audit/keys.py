"""Ed25519 keys that sign audit checkpoints, and the forms a verifier pins a public key in.

The private key lives in a PEM file kept away from the database host: whoever can write the database can
re-chain the log, but cannot sign a checkpoint for the re-written history without this key. Public keys are
identified by a fingerprint, "sha256:" and the hex SHA-256 of the 32 raw key bytes, short enough to publish.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from simsa.audit.files import read_capped, write_new
from simsa.errors import InputError

KEY_FILE_LIMIT = 16 * 1024
RAW_KEY_BYTES = 32
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


def fingerprint(public_key: bytes) -> str:
    """"sha256:<hex>" of the raw public key: what is published so verifiers can compare or pin it."""
    return "sha256:" + hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True)
class PublicKey:
    """A raw Ed25519 public key with the forms people copy: base64, hex and the fingerprint."""

    raw: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    @property
    def base64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    def pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM, readable by OpenSSL and by `--trusted-key`."""
        return Ed25519PublicKey.from_public_bytes(self.raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def to_dict(self) -> dict:
        return {"public_key": self.base64, "public_key_hex": self.raw.hex(), "fingerprint": self.fingerprint}


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_of(key: Ed25519PrivateKey) -> PublicKey:
    return PublicKey(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def private_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: file permissions and keeping it off the database host protect it."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def parse_private_key(data: bytes, source: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM bytes; anything else is one clear input error."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InputError(f"{source}: the key is encrypted; simsa needs an unencrypted PEM key (keep the file "
                         f"mode 0600 and off the database host)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise InputError(f"{source}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{source}: not an Ed25519 key ({type(key).__name__})")
    return key


def parse_public_key(text: str, source: str) -> PublicKey:
    """A public key as PEM, base64 or hex of the 32 raw bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
            raise InputError(f"{source}: not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InputError(f"{source}: not an Ed25519 public key ({type(key).__name__})")
        return PublicKey(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    if _HEX_KEY.fullmatch(text):
        return PublicKey(bytes.fromhex(text))
    raw = b64_bytes(text)
    if len(raw) != RAW_KEY_BYTES:
        raise InputError(f"{source}: not an Ed25519 public key (PEM, or the 32 raw bytes in base64 or hex)")
    return PublicKey(raw)


def b64_bytes(value: object) -> bytes:
    """Strict base64 text as bytes; b"" for anything that is not (callers check the length they need)."""
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def parse_pin(text: str, source: str) -> str:
    """The fingerprint a verifier trusts, from a public key in any accepted form or a "sha256:<hex>" fingerprint."""
    text = text.strip()
    if _FINGERPRINT.fullmatch(text.lower()):
        return text.lower()
    return parse_public_key(text, source).fingerprint


# --------------------------------------------------------------------------- key files


def write_private_key(path: str | Path, key: Ed25519PrivateKey) -> None:
    """Mode 0600, never over an existing file (an overwritten key would orphan every checkpoint it signed)."""
    write_new(path, private_pem(key), 0o600, "key")


def write_public_key(path: str | Path, public: PublicKey) -> None:
    write_new(path, public.pem(), 0o644, "public key file")


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    return parse_private_key(read_capped(path, KEY_FILE_LIMIT, "key file"), str(path))


def read_pin(value: str) -> str:
    """A trusted key given on the command line: a key file (PEM, base64 or hex) or the key or fingerprint itself."""
    path = Path(value)
    if path.is_file():
        data = read_capped(path, KEY_FILE_LIMIT, "public key file")
        try:
            return parse_pin(data.decode("ascii"), value)
        except UnicodeDecodeError:
            raise InputError(f"{value}: not a public key file") from None
    try:
        return parse_pin(value, "--trusted-key")
    except InputError:
        raise InputError(f"--trusted-key {value!r}: neither a readable key file nor a public key "
                         f"(base64 or hex) or fingerprint (sha256:<hex>)") from None
