"""The datastore: cluster objects with revisions and a watch (`api`), the SQLite backend
(`sqlite`, its SQL in `tables`), a consumer's list-then-watch cache (`mirror`), and the pure
pieces every write uses: documents in (`documents`), kubectl apply's merge (`merge`), kubectl
label (`labels`), and the kinds as the command line names them (`kinds`)."""

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
