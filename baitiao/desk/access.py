"""Who may use the desk: users with scrypt password hashes, signed login tokens, roles.

Roles (docs/desk.md): a ``collector`` works the accounts assigned to them (personal data
masked) and records outcomes; a ``supervisor`` sees every worklist, reassigns, reads the
KPIs and the audit log, decides waivers and may see personal data unmasked (each view
audited); an ``operator`` reads dead letters and job runs, replays letters and pauses
delinquency. A token is ``<username>.<role>.<expiry>.<hmac>``: the server keeps no
sessions, and a disabled user's tokens stop working at their next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, select, update

from baitiao.desk import state

Role = Literal["collector", "supervisor", "operator"]
ROLES: tuple[Role, ...] = ("collector", "supervisor", "operator")
COOKIE = "desk_session"

# scrypt's cost: 16 MiB and about 50 ms a hash, so a stolen table is slow to guess at.
_N, _R, _P = 2**14, 8, 1


class AccessDenied(Exception):
    """Not logged in (401) or not allowed (403)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class User:
    username: str
    role: Role

    @property
    def sees_personal_data(self) -> bool:
        """Whether names and phones are shown unmasked to this user (supervisors only)."""
        return self.role == "supervisor"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def add_user(engine: Engine, username: str, role: str, password: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not 1 <= len(username) <= 64 or "." in username:
        raise ValueError("a username is 1 to 64 characters, without dots")
    if len(password) < 8:
        raise ValueError("a password has at least 8 characters")
    with engine.begin() as connection:
        connection.execute(
            state.users.insert().values(
                username=username,
                password_hash=hash_password(password),
                role=role,
                active=True,
                created_at=state.utc_now(),
            )
        )


def disable_user(engine: Engine, username: str) -> bool:
    with engine.begin() as connection:
        done = connection.execute(update(state.users).where(state.users.c.username == username).values(active=False))
    return bool(done.rowcount)


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    with engine.connect() as connection:
        row = connection.execute(select(state.users).where(state.users.c.username == username)).first()
    if row is None or not row.active or not password_matches(password, row.password_hash):
        return None
    return User(row.username, row.role)


def active_user(engine: Engine, username: str) -> User | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(state.users.c.username, state.users.c.role, state.users.c.active).where(
                state.users.c.username == username
            )
        ).first()
    return User(row.username, row.role) if row is not None and row.active else None


def issue_token(user: User, secret: bytes, hours: float, now: float | None = None) -> str:
    expiry = int((now if now is not None else time.time()) + hours * 3600)
    body = f"{user.username}.{user.role}.{expiry}"
    return f"{body}.{_sign(body, secret)}"


def read_token(token: str, secret: bytes, now: float | None = None) -> User | None:
    """The user a token names, or None when forged, malformed or expired."""
    try:
        username, role, expiry, signature = token.split(".")
    except ValueError:
        return None
    body = f"{username}.{role}.{expiry}"
    if not hmac.compare_digest(signature, _sign(body, secret)):
        return None
    if not expiry.isdigit() or int(expiry) < (now if now is not None else time.time()) or role not in ROLES:
        return None
    return User(username, role)  # type: ignore[arg-type]


def _sign(body: str, secret: bytes) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def require(user: User | None, *roles: Role) -> User:
    """The user when logged in with one of ``roles``; else AccessDenied (401 or 403)."""
    if user is None:
        raise AccessDenied(401, "log in first")
    if roles and user.role not in roles:
        raise AccessDenied(403, f"{user.role} may not do this (needs {' or '.join(roles)})")
    return user
