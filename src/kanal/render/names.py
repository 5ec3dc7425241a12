"""Deterministic, readable nft names for sets, chains and log ids, derived from content.

A name must be a valid nft identifier (letters, digits, `_`, `-`, `.`; starting with a letter;
never a keyword, which the fixed prefixes guarantee), at most `MAX_NAME` characters, and the same
content must always give the same name, on every node and in every process. A name made only
from a Kubernetes name (DNS labels: `a-z0-9-.`) is used as is, joined with `_` (which DNS names
never contain, so the join is injective); anything else (label selectors, CIDR lists, port lists)
becomes a readable slug plus a short hash of the full text, so two different contents cannot
share a name unless the hash collides (48 bits; a collision is detected by the caller).

This module knows nothing about the engine: callers pass the text that identifies the content.
"""

from __future__ import annotations

import hashlib
import re
from typing import NewType

from kanal.model.objects import Direction

SetName = NewType("SetName", str)
ChainName = NewType("ChainName", str)
LogId = NewType("LogId", str)

MAX_NAME = 120
"""Well under the kernel's 255 (NFT_NAME_MAXLEN), so listings stay readable."""

SLUG_LEN = 40
HASH_LEN = 10
LOG_HASH_LEN = 12
LOG_PREFIX = "k:"

_SAFE = re.compile(r"[a-z0-9][a-z0-9.-]*")
_UNSAFE_RUN = re.compile(r"[^a-z0-9]+")

SHORT_DIRECTION = {Direction.INGRESS: "in", Direction.EGRESS: "eg"}


def short_hash(text: str, length: int = HASH_LEN) -> str:
    """The first `length` hex digits of SHA-256: stable across processes (unlike `hash()`)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def slug(text: str, length: int = SLUG_LEN) -> str:
    """Lower-case alphanumeric runs of `text` joined by `-`, cut to `length` (readability only)."""
    cleaned = _UNSAFE_RUN.sub("-", text.lower()).strip("-")
    return cleaned[:length].rstrip("-") or "x"


def _is_safe(part: str) -> bool:
    return _SAFE.fullmatch(part) is not None


def ident(prefix: str, *parts: str) -> str:
    """`prefix_part1_part2…` when every part is already a safe name and the result is short;
    otherwise `prefix_<slug>_<hash of the exact parts>`."""
    joined = "_".join((prefix, *parts))
    if all(_is_safe(p) for p in parts) and len(joined) <= MAX_NAME:
        return joined
    exact = "\x00".join(parts)
    return f"{prefix}_{slug(' '.join(parts))}_{short_hash(exact)}"


def hashed(prefix: str, readable: str, exact: str) -> str:
    """`prefix_<slug of readable>_<hash of exact>`: for contents with no natural name."""
    return f"{prefix}_{slug(readable)}_{short_hash(exact)}"


def family_suffix(family: int) -> str:
    return f"v{family}"


def selector_set(describe: str, family: int) -> SetName:
    """Pods matched by one endpoint selector (its `describe()`), one family."""
    readable = describe.replace("ns:kubernetes.io/metadata.name=", "ns=").replace("pod:", "")
    return SetName(f"{hashed('pods', readable, describe)}_{family_suffix(family)}")


def node_set(describe: str, family: int) -> SetName:
    return SetName(f"{hashed('nodes', describe, describe)}_{family_suffix(family)}")


def range_set(readable: str, exact: str, family: int) -> SetName:
    return SetName(f"{hashed('cidrs', readable, exact)}_{family_suffix(family)}")


def named_port_set(port_name: str, family: int) -> SetName:
    return SetName(ident("port", port_name, family_suffix(family)))


def port_list_set(readable: str) -> SetName:
    return SetName(hashed("ports", readable, readable))


def policy_chain(tier_prefix: str, key: str, direction: Direction) -> ChainName:
    """`np_<ns>_<name>_in`, `anp_<name>_eg`, `banp_default_in`: one chain per policy per
    direction, named after the policy so a listing reads like the manifests."""
    return ChainName(ident(tier_prefix, *key.split("/"), SHORT_DIRECTION[direction]))


def dispatch_chain(direction: Direction, signature: str) -> ChainName:
    """The chain shared by every pod group with the same policies in the same order."""
    return ChainName(f"{direction.value.lower()}_{short_hash(signature)}")


def log_id(identity: str) -> LogId:
    """A compact NFLOG prefix (`k:` + 12 hex, 14 chars) that identifies one decision forever:
    derived from the decision's content, so it is the same on every node and across reloads."""
    return LogId(LOG_PREFIX + short_hash(identity, LOG_HASH_LEN))


def port_class_chain(direction: Direction, signature: str) -> ChainName:
    """The NetworkPolicy chains one (protocol, port) class jumps to, shared by identical
    content."""
    return ChainName(f"npport_{SHORT_DIRECTION[direction]}_{short_hash(signature)}")


def policy_any_chain(tier_prefix: str, key: str, direction: Direction) -> ChainName:
    """`np_<ns>_<name>_in_any`: a NetworkPolicy's rules that allow any port (or an egress named
    port), met by every NEW packet of the pods it selects, whatever the port."""
    return ChainName(ident(tier_prefix, *key.split("/"), SHORT_DIRECTION[direction], "any"))


POLICY_CHAIN_PREFIXES = ("anp_", "banp_")
"""The admin tiers' chains (`policy_chain`), which sort after every other non-base chain: the
content-named ones (dispatch, port class) and the NetworkPolicy chains (`np_…`), by name."""


def chain_order(name: ChainName) -> tuple[bool, str]:
    """Where a non-base chain stands in a rendered table: content-named chains first, then the
    policy chains, each by name. A function of the name alone, so a chain added to a table
    later (`kanal.agent.local`) finds the place a from-scratch render would give it."""
    return name.startswith(POLICY_CHAIN_PREFIXES), name


def local_pods_set(family: int) -> SetName:
    """Every local pod's address of one family (`kanal.render.guard`)."""
    return SetName(f"local_pods_{family_suffix(family)}")
