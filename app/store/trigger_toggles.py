"""Triggers switched on or off at run time by a `trigger.Toggle` task. A toggle wins over the trigger's `disabled`
in the flow's source until another toggle changes it; the scheduler and the Flow triggers read them when they
decide whether a trigger fires."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.model.records import now
from app.store.database import Store
from app.store.tables import trigger_toggles

Key = tuple[str, str, str]  # namespace, flow id, trigger id


def toggle(store: Store, namespace: str, flow_id: str, trigger_id: str, disabled: bool) -> None:
    values = {"namespace": namespace, "flow_id": flow_id, "trigger_id": trigger_id, "disabled": disabled,
              "updated": now()}
    insert = (sqlite.insert(trigger_toggles) if store.is_sqlite else postgresql.insert(trigger_toggles)).values(values)
    with store.begin() as conn:
        conn.execute(insert.on_conflict_do_update(index_elements=["namespace", "flow_id", "trigger_id"],
                                                  set_={"disabled": disabled, "updated": values["updated"]}))


def toggled(store: Store) -> dict[Key, bool]:
    """Every toggle: (namespace, flow id, trigger id) -> disabled."""
    with store.reads() as conn:
        return {(row.namespace, row.flow_id, row.trigger_id): row.disabled
                for row in conn.execute(sa.select(trigger_toggles))}


def is_disabled(toggles: dict[Key, bool], namespace: str, flow_id: str, trigger_id: str, declared: bool) -> bool:
    return toggles.get((namespace, flow_id, trigger_id), declared)


__all__ = ["Key", "is_disabled", "toggle", "toggled"]
