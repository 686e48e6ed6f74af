"""Metadata layers kept in the database: installed sector packs and the admin overrides.

A counter in `kv_state` changes with every pack install/uninstall and studio revision.
Each process compares it once per request (or job, or command) and re-resolves the model
when it moved, so a change takes effect at once in every web and worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from engine.storage.database import reading


@dataclass(frozen=True)
class LayerState:
    version: int = 0
    packs: tuple[str, ...] = ()
    fragments: tuple[tuple[int, str], ...] = field(default_factory=tuple)


def _tables():
    state = sa.table("kv_state", sa.column("id"), sa.column("metadata_version"))
    packs = sa.table("kv_pack", sa.column("key"), sa.column("active"), sa.column("position"))
    revisions = sa.table("kv_revision", sa.column("id"), sa.column("fragment"),
                         sa.column("active"), sa.column("kind"))
    return state, packs, revisions


def read_state(db: sa.Engine) -> LayerState:
    """Installed packs (in order) and active admin fragments, with the version they make."""
    state, packs, revisions = _tables()
    with db.connect() as conn:
        if not sa.inspect(conn).has_table("kv_state"):
            return LayerState()
        version = conn.execute(sa.select(state.c.metadata_version)
                               .where(state.c.id == 1)).scalar() or 0
        installed = tuple(conn.execute(sa.select(packs.c.key).where(packs.c.active.is_(True))
                                       .order_by(packs.c.position)).scalars())
        fragments = tuple((r.id, r.fragment) for r in conn.execute(
            sa.select(revisions.c.id, revisions.c.fragment)
            .where(revisions.c.active.is_(True), revisions.c.fragment.is_not(None))
            .order_by(revisions.c.id)))
    return LayerState(version=version, packs=installed, fragments=fragments)


def bump_version(conn) -> int:
    """Tell every process the metadata layers changed (inside the caller's transaction)."""
    state, _packs, _revisions = _tables()
    updated = conn.execute(sa.update(state).where(state.c.id == 1)
                           .values(metadata_version=state.c.metadata_version + 1)
                           .returning(state.c.metadata_version)).scalar()
    if updated is None:
        conn.execute(sa.insert(state).values(id=1, metadata_version=1))
        updated = 1
    return updated


def current_version(db: sa.Engine) -> int:
    state, _packs, _revisions = _tables()
    try:
        with reading(db) as conn:
            return conn.execute(sa.select(state.c.metadata_version)
                                .where(state.c.id == 1)).scalar() or 0
    except sa.exc.DBAPIError:
        return 0


