"""Quarantiner: an alert's `quarantine` action, labelling the offending pod in the datastore
as `kanal label pod NS/NAME kanal.io/quarantine=true --overwrite` would (the store's `update`
with `kanal.store.labels.relabel`: one revision, validated, no lost update).

Kanal does not isolate anything itself: an administrator's policy selecting the label does
(an AdminNetworkPolicy denying everything to and from pods with `kanal.io/quarantine=true`),
and the node agents, which follow the store, enforce it at once. Only pods can be labelled:
an alert about an address outside the cluster says so.

It runs in the collector's thread (one SQLite write, rare: the throttle holds repeats) and
waits at most `busy_timeout` for the store's lock; every outcome is a sentence for the alert.
A failure is not retried: the next alert for the same pod, after the throttle, tries again.
"""

from __future__ import annotations

from pathlib import Path

from kanal.errors import KanalError, NotFoundError
from kanal.flows.alertscope import AlertKey
from kanal.model.alertrule import QuarantineAction
from kanal.store.api import Doc, ObjectRef, Outcome
from kanal.store.labels import LabelChanges, relabel
from kanal.store.sqlite import SqliteStore

DEFAULT_BUSY_TIMEOUT_S = 5.0


class Quarantiner:
    """Labels pods in the datastore at `store` (None: the collector has no datastore, only
    manifest files, so nothing can be labelled)."""

    def __init__(self, store: Path | None, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S
                 ) -> None:
        self.path = store
        self.busy_timeout = busy_timeout
        self._store: SqliteStore | None = None

    def quarantine(self, key: AlertKey, action: QuarantineAction) -> tuple[bool, str]:
        """Label the pod of `key`; (whether it carries the label now, what happened)."""
        label = f"{action.label}={action.value}"
        if key.pod is None or key.namespace is None:
            return False, f"cannot quarantine {key.text}: not a pod (only pods can be labelled)"
        pod = f"{key.namespace}/{key.pod}"
        if self.path is None:
            return False, (f"cannot quarantine {pod}: the collector reads manifest files, not a "
                           "datastore (give --manifests a kanal datastore)")
        changes = LabelChanges({action.label: action.value}, ())

        def change(doc: Doc) -> Doc:
            return relabel(doc, changes, overwrite=True).doc

        try:
            result = self._open().update(ObjectRef("Pod", key.namespace, key.pod), change)
        except NotFoundError:
            return False, f"cannot quarantine {pod}: it is no longer in the datastore"
        except KanalError as exc:
            return False, f"cannot quarantine {pod}: {exc}"
        if result.objects[0].outcome is Outcome.UNCHANGED:
            return True, f"{pod} was already labelled {label}"
        return True, f"quarantined {pod}: labelled {label} (store revision {result.revision})"

    def _open(self) -> SqliteStore:
        if self._store is None:
            assert self.path is not None
            self._store = SqliteStore(self.path, create=False, busy_timeout=self.busy_timeout)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


__all__ = ["Quarantiner"]
