"""The datastore: cluster objects with revisions and a watch (`api`), the SQLite backend
(`sqlite`), a consumer's list-then-watch cache (`mirror`), and the pure pieces every write uses:
documents in (`documents`), kubectl apply's merge (`merge`) and kubectl label (`labels`)."""

from kanal.store.api import (
    Datastore,
    Doc,
    Event,
    EventType,
    ObjectRef,
    Outcome,
    ResyncRequired,
    Revision,
    StoredObject,
    StoreError,
    WriteResult,
    Written,
)

__all__ = [
    "Datastore",
    "Doc",
    "Event",
    "EventType",
    "ObjectRef",
    "Outcome",
    "ResyncRequired",
    "Revision",
    "StoreError",
    "StoredObject",
    "WriteResult",
    "Written",
]
