"""IR -> nft text: the whole table, or the element delta between two renders of one node.

`table_text` is the body that `kanal.dataplane.nft.load_table_atomically` replaces the table
with (it adds the `table`/`delete table` idiom). Inside the block, sets and maps come first, then
chains with their rules: nft resolves `@set` and `jump` references within one block in any order,
but this order also loads when the text is split into commands.

`delta_text` is what an element-only change needs: `delete element` for what went away, then
`add element` for what came (a map entry whose verdict changed is deleted and added again), all
in one buffer, i.e. one transaction. It is only valid between two rulesets whose skeletons are
equal (`only_elements_differ`); `plan_update` chooses between the two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from kanal.render.ir import Chain, NamedSet, Rule, Ruleset, VerdictMap

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
    where = f"{new.family} {new.table}"
    deletes: list[str] = []
    adds: list[str] = []
    for before, after in zip(old.sets, new.sets, strict=True):
        gone, came = _diff(before.elements, after.elements)
        deletes.extend(_element_command("delete", after.name, where=where, elements=gone))
        adds.extend(_element_command("add", after.name, where=where, elements=came))
    for vbefore, vafter in zip(old.maps, new.maps, strict=True):
        removed, added = _diff(vbefore.elements, vafter.elements)
        deletes.extend(_element_command(
            "delete", vafter.name, where=where, elements=(k for k, _ in removed)
        ))
        adds.extend(_element_command(
            "add", vafter.name, where=where, elements=(f"{k} : {v}" for k, v in added)
        ))
    lines = deletes + adds
    return "\n".join(lines) + "\n" if lines else ""


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
