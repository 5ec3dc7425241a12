"""Documents and stores for the datastore tests.

```
store = open_store(tmp_path, history=5)
store.apply([pod("x/a", labels(app="web")), netpol("x/deny")])
```

Documents are `(source, raw)` pairs, as `read_documents` gives them; a pod's source is
`x-a.yaml`. `FakeClock` replaces time: `sleep` advances it and may run a callback, so a test
can commit from another connection "while" a watcher sleeps, without threads or real sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kanal.store.api import ObjectRef
from kanal.store.sqlite import SqliteStore

Doc = dict[str, Any]
Tweak = Callable[[Doc], None]
Document = tuple[str, object]


def labels(**values: str) -> Tweak:
    def tweak(doc: Doc) -> None:
        doc["metadata"]["labels"] = dict(values)

    return tweak


def on_node(name: str) -> Tweak:
    def tweak(doc: Doc) -> None:
        doc.setdefault("spec", {})["nodeName"] = name

    return tweak


def pod_ip(address: str) -> Tweak:
    def tweak(doc: Doc) -> None:
        doc["status"] = {"podIP": address}

    return tweak


def _document(api: str, kind: str, key: str, tweaks: tuple[Tweak, ...]) -> Document:
    namespace, _, name = key.rpartition("/")
    metadata: Doc = {"name": name, **({"namespace": namespace} if namespace else {})}
    doc: Doc = {"apiVersion": api, "kind": kind, "metadata": metadata}
    for tweak in tweaks:
        tweak(doc)
    return f"{key.replace('/', '-')}.yaml", doc


def pod(key: str, *tweaks: Tweak) -> Document:
    return _document("v1", "Pod", key, tweaks)


def namespace(name: str, *tweaks: Tweak) -> Document:
    return _document("v1", "Namespace", name, tweaks)


def netpol(key: str, *tweaks: Tweak) -> Document:
    source, doc = _document("networking.k8s.io/v1", "NetworkPolicy", key, tweaks)
    assert isinstance(doc, dict)
    doc.setdefault("spec", {"podSelector": {}})
    return source, doc


def lab(name: str) -> Document:
    return _document("kanal.io/v1alpha1", "Lab", name, ())


def anp(name: str, priority: int) -> Document:
    source, doc = _document("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy", name, ())
    assert isinstance(doc, dict)
    doc["spec"] = {"priority": priority, "subject": {"namespaces": {}}, "ingress": []}
    return source, doc


def ref(kind: str, key: str) -> ObjectRef:
    namespace, _, name = key.rpartition("/")
    return ObjectRef(kind, namespace, name)


class FakeClock:
    """Time that moves only when slept; `on_sleep` runs at each sleep (after time moved)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


def open_store(directory: Path, **options: Any) -> SqliteStore:
    return SqliteStore(directory / "store.db", **options)
