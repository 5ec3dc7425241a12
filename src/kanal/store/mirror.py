"""Mirror: a consumer's copy of the store, kept by list-then-watch (client-go's reflector).

```
first sync ──► list() ──► objects, R ──► every object as ADDED
next syncs ──► poll(R) ──► events ──► applied in order, R = last event's revision
               └─ ResyncRequired ──► list() again ──► the difference as events (ADDED,
                                                     MODIFIED, DELETED), R = the list's revision
```

Every `sync` returns the events it applied, so a consumer (the agent) sees one stream of
changes whether they came from the log or from a resync, and after any sync the mirror holds
exactly the store's state at `revision`. It does not interpret documents (the agent parses
them) and does not thread or retry: the caller decides when to sync.
"""

from __future__ import annotations

from kanal.store.api import Datastore, Doc, Event, EventType, ObjectRef, ResyncRequired, Revision


class Mirror:
    """The objects of `store` as of `revision` (None until the first sync)."""

    def __init__(self, store: Datastore) -> None:
        self._store = store
        self.objects: dict[ObjectRef, Doc] = {}
        self.revision: Revision | None = None
        self.resyncs = 0
        """How many times the log was gone and the mirror re-listed (a metric for the agent)."""

    def sync(self, *, timeout: float = 0.0) -> list[Event]:
        """Catch up with the store, waiting up to `timeout` for a change; the changes applied."""
        if self.revision is None:
            return self._relist()
        try:
            events = self._store.poll(self.revision, timeout=timeout)
        except ResyncRequired:
            self.resyncs += 1
            return self._relist()
        for event in events:
            self._apply(event)
        return list(events)

    def _apply(self, event: Event) -> None:
        if event.doc is None:
            self.objects.pop(event.ref, None)
        else:
            self.objects[event.ref] = event.doc
        self.revision = event.revision

    def _relist(self) -> list[Event]:
        """Replace the mirror with a fresh list; the difference, as events at its revision."""
        stored, revision = self._store.list()
        listed = {o.ref: o.doc for o in stored}
        events = [
            Event(EventType.DELETED, ref, None, revision)
            for ref in sorted(self.objects.keys() - listed.keys())
        ]
        for ref, doc in listed.items():
            if ref not in self.objects:
                events.append(Event(EventType.ADDED, ref, doc, revision))
            elif self.objects[ref] != doc:
                events.append(Event(EventType.MODIFIED, ref, doc, revision))
        self.objects, self.revision = listed, revision
        return events
