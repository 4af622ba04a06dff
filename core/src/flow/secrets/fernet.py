"""Fernet encryption of what flow stores as secret: connection passwords and extras, variables.

``[core] fernet_key`` holds one key or a comma-separated list. The first key encrypts; every
key decrypts (:class:`cryptography.fernet.MultiFernet`), so a key is rotated by putting a new
key first, running ``flow db rotate-fernet-key`` (which re-encrypts every stored value with the
first key), then dropping the old one.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from flow.config import Config, ConfigError, load_config
from flow.exceptions import FernetKeyMissing

HOW_TO_MAKE_A_KEY = (
    "Make one with `flow config generate-fernet-key` and put it in $FLOW_HOME/flow.toml as "
    "`fernet_key = \"...\"` under `[core]`, or in the environment variable "
    "FLOW__CORE__FERNET_KEY."
)

_cache: dict[str, MultiFernet] = {}


class FernetDecryptError(ValueError):
    """A stored token does not decrypt with any configured key."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def get_fernet(config: Config | None = None) -> MultiFernet:
    """The MultiFernet of ``[core] fernet_key``; :class:`FernetKeyMissing` when none is set."""
    config = config or load_config()
    raw = str(config.get("core", "fernet_key") or "")
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    if not keys:
        raise FernetKeyMissing(
            "no Fernet key is configured, and flow never stores a password, a connection extra "
            f"or a variable in plain text. {HOW_TO_MAKE_A_KEY}")
    cache_key = ",".join(keys)
    fernet = _cache.get(cache_key)
    if fernet is None:
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode()))
            except ValueError as err:
                raise ConfigError(
                    f"[core] fernet_key: key number {position} is not a Fernet key ({err}). "
                    f"{HOW_TO_MAKE_A_KEY}") from None
        fernet = _cache[cache_key] = MultiFernet(fernets)
    return fernet


def encrypt(plain: str, config: Config | None = None) -> str:
    return get_fernet(config).encrypt(plain.encode()).decode()


def decrypt(token: str, what: str, config: Config | None = None) -> str:
    """The plain text of ``token``; ``what`` names it in the error ("connection 'db' password")."""
    try:
        return get_fernet(config).decrypt(token.encode()).decode()
    except InvalidToken:
        raise FernetDecryptError(
            f"{what} does not decrypt with the configured [core] fernet_key. Was it stored with "
            "another key? Put that key in the comma-separated list (old keys after the new "
            "one) and run `flow db rotate-fernet-key`.") from None


def rotate(token: str, what: str, config: Config | None = None) -> str:
    """``token`` re-encrypted with the first configured key."""
    try:
        return get_fernet(config).rotate(token.encode()).decode()
    except InvalidToken:
        raise FernetDecryptError(
            f"{what} does not decrypt with any configured [core] fernet_key; it was left as it "
            "was") from None
