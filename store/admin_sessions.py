"""services.admin_sessions.AdminStore on the shared database: each call its own short
transaction, so every tracker worker sees a session, a failed sign-in or a sign-out at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from services.admin_sessions import StoredSession
from store.models import AdminAuditRow, AdminSessionRow, AdminSignInFailureRow


class SqlAdminStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_session(self, session: StoredSession) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                insert(AdminSessionRow).values(
                    id_hash=session.id_hash,
                    token_fingerprint=session.token_fingerprint,
                    created_at=session.created_at,
                    last_seen_at=session.last_seen_at,
                )
            )

    def session(self, id_hash: str) -> StoredSession | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(
                    AdminSessionRow.id_hash,
                    AdminSessionRow.token_fingerprint,
                    AdminSessionRow.created_at,
                    AdminSessionRow.last_seen_at,
                ).where(AdminSessionRow.id_hash == id_hash)
            ).one_or_none()
        return None if row is None else StoredSession(*row)

    def touch_session(self, id_hash: str, now: datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(AdminSessionRow)
                .where(AdminSessionRow.id_hash == id_hash, AdminSessionRow.last_seen_at < now)
                .values(last_seen_at=now)
            )

    def end_session(self, id_hash: str) -> bool:
        with self._engine.begin() as connection:
            ended = connection.execute(
                delete(AdminSessionRow).where(AdminSessionRow.id_hash == id_hash)
            )
        return bool(ended.rowcount)

    def failures_since(self, client: str, since: datetime) -> list[datetime]:
        with self._engine.connect() as connection:
            return list(
                connection.scalars(
                    select(AdminSignInFailureRow.failed_at).where(
                        AdminSignInFailureRow.client == client,
                        AdminSignInFailureRow.failed_at > since,
                    )
                )
            )

    def add_failure(self, client: str, at: datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(insert(AdminSignInFailureRow).values(client=client, failed_at=at))

    def audit(self, who: str, action: str, person_id: int | None, at: datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                insert(AdminAuditRow).values(
                    who=who[:80], action=action[:80], person_id=person_id, at=at
                )
            )

    def forget(self, sessions_before: datetime, failures_before: datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                delete(AdminSessionRow).where(AdminSessionRow.created_at <= sessions_before)
            )
            connection.execute(
                delete(AdminSignInFailureRow).where(
                    AdminSignInFailureRow.failed_at <= failures_before
                )
            )
