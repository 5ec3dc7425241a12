"""`kubectl apply`'s three-way merge, on plain JSON documents.

An apply compares three versions of an object: what the previous apply sent (`last`), what
this one sends (`new`) and what is stored (`live`, which `kanal label` may have changed since):

- a field `new` sets is set to its value (maps are merged key by key, recursively);
- a field `last` set and `new` no longer has is removed;
- any other field of `live` is kept: someone else set it, apply does not own it.

Lists are replaced whole, as a JSON merge patch does (kubectl's strategic merge of lists by
key, e.g. containers by name, is not modelled: kanal's kinds are only ever changed by apply or
by label). The result is what Kubernetes' client-side apply produces for custom resources.
"""

from __future__ import annotations

from typing import Any

from kanal.store.api import Doc


def merge3(last: Doc | None, new: Doc, live: Doc) -> Doc:
    """The object after applying `new` over `live`, `last` being the previous apply (None:
    never applied, so nothing is removed)."""
    merged = _merge(last or {}, new, live)
    assert isinstance(merged, dict)
    return merged


def _merge(last: Any, new: Any, live: Any) -> Any:
    if not isinstance(new, dict) or not isinstance(live, dict):
        return new
    last = last if isinstance(last, dict) else {}
    merged = {key: value for key, value in live.items() if key in new or key not in last}
    for key, value in new.items():
        merged[key] = _merge(last.get(key), value, live[key]) if key in live else value
    return merged
