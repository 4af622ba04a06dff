"""Users and API tokens of the web UI and REST API (no Flask here: the CLI uses it too).

Passwords are stored as salted scrypt hashes (werkzeug.security); an API token is shown once
when it is made and only its SHA-256 is stored, so a copy of the database holds no credential.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from flow.exceptions import FlowException
from flow.store.models import ApiToken, User
from flow.utils.timezone import utcnow

ROLES = ("viewer", "op", "admin")  # each role can do everything the ones before it can
TOKEN_PREFIX = "flow_"  # noqa: S105 - a public prefix that makes leaked tokens greppable
MIN_PASSWORD_LENGTH = 8


class UserError(FlowException):
    """A user-management request that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class AuthenticatedUser:
    """Who made a request: what the web layer keeps, never the password hash."""

    id: int
    username: str
    role: str

    def can(self, role: str) -> bool:
        return role_rank(self.role) >= role_rank(role)


def role_rank(role: str) -> int:
    try:
        return ROLES.index(role)
    except ValueError:
        raise UserError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}") from None


def hash_password(password: str) -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password, method="scrypt")


def check_password(password_hash: str, password: str) -> bool:
    from werkzeug.security import check_password_hash

    return check_password_hash(password_hash, password)


def password_fingerprint(password_hash: str) -> str:
    """Bound into each login session: a password reset ends every session made before it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def create_user(session: Session, username: str, password: str, role: str,
                email: str | None = None) -> User:
    role_rank(role)
    username = username.strip()
    if not username:
        raise UserError("a user needs a non-empty username")
    _check_password_strength(password)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} already exists; use `flow users reset-password`")
    user = User(username=username, email=email, role=role, active=True,
                password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"no user named {username!r}; `flow users list` shows them")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def delete_user(session: Session, username: str) -> None:
    user = get_user(session, username)
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.delete(user)
    session.flush()


def reset_password(session: Session, username: str, password: str) -> None:
    _check_password_strength(password)
    get_user(session, username).password_hash = hash_password(password)
    session.flush()


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this password, or None (the same answer for every failure)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        # Hash anyway so a missing user and a wrong password take the same time.
        check_password(_dummy_hash(), password)
        return None
    if not user.active or not check_password(user.password_hash, password):
        return None
    user.last_login = utcnow()
    return user


_dummy: list[str] = []


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(hash_password(secrets.token_hex(8)))
    return _dummy[0]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, username: str, name: str = "default",
                 expires_at: datetime | None = None) -> str:
    """Make an API token for ``username``; returns the token (shown once, never stored)."""
    user = get_user(session, username)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=token_hash(token),
                         expires_at=expires_at))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    row.last_used_at = utcnow()
    return user
