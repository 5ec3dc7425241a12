"""IR -> nft text: the whole table, or the element delta between two renders of one node.

`table_text` is the body that `kanal.dataplane.nft.load_table_atomically` replaces the table
with (it adds the `table`/`delete table` idiom). Inside the block, sets and maps come first, then
chains with their rules: nft resolves `@set` and `jump` references within one block in any order,
but this order also loads when the text is split into commands.

`delta_text` is what an element-only change needs: `delete element` for what went away, then
`add element` for what came (a map entry whose verdict changed is deleted and added again), all
in one buffer, i.e. one transaction. It is only valid between two rulesets whose skeletons are
equal (`only_elements_differ`); `plan_update` chooses between the two.

`patch_text` also adds and removes whole chains and sets (a local pod's change that needs a new
dispatch chain, or leaves one unused: `kanal.agent.local`), still as one transaction:

```
table inet kanal { set … { … elements } chain … { rules } }   new sets and chains, declared in
                                                              one block (references resolve in
                                                              any order inside it)
delete element … / add element …                              elements, maps included: entries
                                                              leave removed chains, enter new ones
delete chain inet kanal <c>                                   no longer referenced; a chain that
                                                              jumps to another goes first (a
                                                              chain still jumped to is busy)
delete set inet kanal <s>                                     after the rules that read it
```

The kernel lists a chain added later after the others: a patched table and a freshly loaded one
hold the same chains, sets and elements, in another listing order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import TypeVar

from kanal.render.ir import Chain, NamedSet, Rule, Ruleset, VerdictMap
from kanal.render.names import SetName
from kanal.render.reach import refs

INDENT = "\t"
MAX_COMMENT = 120
ROW_WIDTH = 80

T = TypeVar("T")


def table_text(ruleset: Ruleset) -> str:
    lines = [f"table {ruleset.family} {ruleset.table} {{"]
    for named in ruleset.sets:
        lines.extend(_set_lines(named))
    for vmap in ruleset.maps:
        lines.extend(_map_lines(vmap))
    for chain in ruleset.chains:
        lines.extend(_chain_lines(chain, ruleset.log_group))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A comment as an nft string: no double quotes or backslashes inside, bounded length."""
    cleaned = text.replace('"', "'").replace("\\", "/")
    return f'"{cleaned[:MAX_COMMENT]}"'


def _elements_lines(elements: Iterable[str]) -> list[str]:
    """One line when short, else rows packed up to `ROW_WIDTH` characters (diff-friendly)."""
    items = list(elements)
    if not items:
        return []
    single = ", ".join(items)
    if len(single) <= ROW_WIDTH:
        return [f"{INDENT * 2}elements = {{ {single} }}"]
    rows: list[list[str]] = [[]]
    for item in items:
        if rows[-1] and len(", ".join([*rows[-1], item])) > ROW_WIDTH:
            rows.append([])
        rows[-1].append(item)
    body = [f"{INDENT * 3}{', '.join(row)}," for row in rows]
    body[-1] = body[-1].rstrip(",")
    return [f"{INDENT * 2}elements = {{", *body, f"{INDENT * 2}}}"]


def _set_lines(named: NamedSet) -> list[str]:
    lines = [f"{INDENT}set {named.name} {{", f"{INDENT * 2}type {named.key_type}"]
    if named.interval:
        lines.append(f"{INDENT * 2}flags interval")
    if named.comment:
        lines.append(f"{INDENT * 2}comment {_quote(named.comment)}")
    lines.extend(_elements_lines(named.elements))
    lines.append(f"{INDENT}}}")
    return lines


def _map_lines(vmap: VerdictMap) -> list[str]:
    lines = [f"{INDENT}map {vmap.name} {{", f"{INDENT * 2}type {vmap.key_type}"]
    lines.extend(_elements_lines(f"{key} : {verdict}" for key, verdict in vmap.elements))
    lines.append(f"{INDENT}}}")
    return lines


def _chain_lines(chain: Chain, log_group: int | None) -> list[str]:
    lines = [f"{INDENT}chain {chain.name} {{"]
    if chain.hook is not None:
        hook = chain.hook
        lines.append(
            f"{INDENT * 2}type {hook.kind} hook {hook.hook} priority {hook.priority}; "
            f"policy {hook.policy};"
        )
    if chain.comment:
        lines.append(f"{INDENT * 2}comment {_quote(chain.comment)}")
    lines.extend(f"{INDENT * 2}{rule_text(rule, log_group)}" for rule in chain.rules)
    lines.append(f"{INDENT}}}")
    return lines


def rule_text(rule: Rule, log_group: int | None = None) -> str:
    """One rule as nft writes it: matches, statements, [log], verdict, [comment]."""
    parts = [*rule.matches, *rule.statements]
    if log_group is not None and rule.log is not None:
        parts.append(f'log prefix "{rule.log}" group {log_group} queue-threshold 1')
    if rule.verdict:
        parts.append(rule.verdict)
    if rule.comment:
        parts.append(f"comment {_quote(rule.comment)}")
    return " ".join(parts)


# -- deltas ----------------------------------------------------------------------------------------


def only_elements_differ(old: Ruleset, new: Ruleset) -> bool:
    """True when `new` can be reached from `old` by element changes alone."""
    return old.skeleton() == new.skeleton()


def delta_text(old: Ruleset, new: Ruleset) -> str:
    """The element commands taking the kernel from `old` to `new` ("" when nothing changed).

    Raises ValueError if the skeletons differ: a structural change needs `table_text`.
    """
    if not only_elements_differ(old, new):
        raise ValueError(f"rulesets of node `{new.node}` differ in structure: reload the table")
    lines = _element_lines(zip(old.sets, new.sets, strict=True),
                           zip(old.maps, new.maps, strict=True), where=f"{new.family} {new.table}")
    return "\n".join(lines) + "\n" if lines else ""


def _element_lines(
    sets: Iterable[tuple[NamedSet, NamedSet]], maps: Iterable[tuple[VerdictMap, VerdictMap]],
    *, where: str,
) -> list[str]:
    """Deletes, then adds, for each (before, after) pair of one set or map."""
    deletes: list[str] = []
    adds: list[str] = []
    for before, after in sets:
        gone, came = _diff(before.elements, after.elements)
        deletes.extend(_element_command("delete", after.name, where=where, elements=gone))
        adds.extend(_element_command("add", after.name, where=where, elements=came))
    for vbefore, vafter in maps:
        removed, added = _diff(vbefore.elements, vafter.elements)
        deletes.extend(_element_command(
            "delete", vafter.name, where=where, elements=(k for k, _ in removed)
        ))
        adds.extend(_element_command(
            "add", vafter.name, where=where, elements=(f"{k} : {v}" for k, v in added)
        ))
    return deletes + adds


def _diff(before: tuple[T, ...], after: tuple[T, ...]) -> tuple[list[T], list[T]]:
    """Elements only in `before`, elements only in `after`, each in its own canonical order."""
    old, new = set(before), set(after)
    return [e for e in before if e not in new], [e for e in after if e not in old]


def _element_command(
    verb: str, name: str, *, where: str, elements: Iterable[str]
) -> list[str]:
    items = list(elements)
    if not items:
        return []
    return [f"{verb} element {where} {name} {{ {', '.join(items)} }}"]


def patch_text(old: Ruleset, new: Ruleset, *, changed: Collection[SetName]) -> str:
    """The commands taking the kernel from `old` to `new` ("" when nothing changed), where `new`
    differs from `old` by whole chains and sets that come or go and by the elements of the sets
    and maps named in `changed` (the caller knows the others are equal; they are not compared).

    Raises ValueError when a chain or set declaration of the same name differs, or the table's
    frame does (families, maps, log group): a change of content needs `table_text`.
    """
    _check_frame(old, new)
    old_chains = {c.name: c for c in old.chains}
    new_chains = {c.name: c for c in new.chains}
    old_sets = {s.name: s for s in old.sets}
    new_sets = {s.name: s for s in new.sets}
    for name, chain in new_chains.items():
        before = old_chains.get(name, chain)
        if before is not chain and before != chain:
            raise ValueError(f"chain {name} of node `{new.node}` changed: reload the table")
    for set_name, named in new_sets.items():
        was = old_sets.get(set_name, named)
        if was is not named and replace(was, elements=()) != replace(named, elements=()):
            raise ValueError(f"set {set_name} of node `{new.node}` changed: reload the table")
    where = f"{new.family} {new.table}"
    lines: list[str] = []
    added_sets = [s for s in new.sets if s.name not in old_sets]
    added_chains = [c for c in new.chains if c.name not in old_chains]
    if added_sets or added_chains:
        lines.append(f"table {where} {{")
        for named in added_sets:
            lines.extend(_set_lines(named))
        for chain in added_chains:
            lines.extend(_chain_lines(chain, new.log_group))
        lines.append("}")
    pairs = [(old_sets[n], new_sets[n]) for n in changed if n in old_sets and n in new_sets]
    old_maps = {m.name: m for m in old.maps}
    vpairs = [(old_maps[m.name], m) for m in new.maps if m.name in changed]
    lines.extend(_element_lines(pairs, vpairs, where=where))
    gone = [c for c in old.chains if c.name not in new_chains]
    lines.extend(f"delete chain {where} {c.name}" for c in _callers_first(gone))
    lines.extend(f"delete set {where} {s.name}" for s in old.sets if s.name not in new_sets)
    return "\n".join(lines) + "\n" if lines else ""


def _check_frame(old: Ruleset, new: Ruleset) -> None:
    """What `patch_text` cannot change: the table, families, maps and how rules log."""
    frame = (new.family, new.table, new.families, new.log_group,
             tuple((m.name, m.key_type) for m in new.maps))
    if frame != (old.family, old.table, old.families, old.log_group,
                 tuple((m.name, m.key_type) for m in old.maps)):
        raise ValueError(f"the table of node `{new.node}` changed its frame: reload the table")


def _callers_first(chains: list[Chain]) -> list[Chain]:
    """`chains` ordered so that each comes after every chain of them that jumps to it."""
    names = {c.name for c in chains}
    callers: dict[str, set[str]] = {c.name: set() for c in chains}
    for chain in chains:
        for target in refs(chain).chains:
            if target in names and target != chain.name:
                callers[target].add(chain.name)
    ordered: list[Chain] = []
    done: set[str] = set()
    pending = list(chains)
    while pending:
        ready = [c for c in pending if callers[c.name] <= done]
        if not ready:
            raise ValueError("removed chains jump to each other in a cycle")
        ordered.extend(ready)
        done.update(c.name for c in ready)
        pending = [c for c in pending if c.name not in done]
    return ordered


@dataclass(frozen=True, slots=True)
class Update:
    """What to send to the kernel: the whole table (`full`, for the atomic loader) or a delta
    (run as one buffer); `text` is "" when nothing changed."""

    full: bool
    text: str


def plan_update(old: Ruleset | None, new: Ruleset) -> Update:
    if old is None or not only_elements_differ(old, new):
        return Update(full=True, text=table_text(new))
    return Update(full=False, text=delta_text(old, new))
