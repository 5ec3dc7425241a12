"""A tiny interpreter of the render IR: one NEW packet through a node's forward hook.

It understands exactly the expressions the renderer emits and raises on anything else, so a new
kind of match cannot slip past the semantic tests unnoticed. It is the test-side model of
nftables semantics for `jump` (push), `goto` (no push), `return`, verdict maps, marks and
interval/concatenated sets; kernel tests check that nft agrees with the text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from kanal.model.objects import IPAddress
from kanal.render.ir import Chain, Rule, Ruleset

ACCEPT, DROP, CONTINUE = "accept", "drop", "continue"
FAMILY = {"ip": 4, "ip6": 6}

_ADDR = re.compile(r"(ip6?) (saddr|daddr) @(\S+)")
_NAMED_PORT = re.compile(r"(ip6?) daddr \. meta l4proto \. th dport @(\S+)")
_PORT_SET = re.compile(r"meta l4proto \. th dport @(\S+)")
_PROTO = re.compile(r"meta l4proto (tcp|udp|sctp)")
_DPORT = re.compile(r"(tcp|udp|sctp) dport (\d+)(?:-(\d+))?")
_MARK_TEST = re.compile(r"meta mark & (0x[0-9a-f]+) (==|!=) 0")
_MARK_SET = re.compile(r"meta mark set meta mark ([|&]) (0x[0-9a-f]+)")
_VMAP = re.compile(r"(ip6?) (saddr|daddr) vmap @(\S+)")
_PORT_VMAP = re.compile(r"meta l4proto \. th dport vmap \{ (.+) \}")
_PORT_ELEMENT = re.compile(r"(tcp|udp|sctp) \. (\d+)(?:-(\d+))? : (jump|goto) (\S+)")


@dataclass
class Packet:
    saddr: IPAddress
    daddr: IPAddress
    proto: str
    dport: int
    mark: int = 0
    logged: list[str] = field(default_factory=list)


def _address_bounds(text: str) -> tuple[int, int]:
    if "/" in text:
        net = ipaddress.ip_network(text)
        return int(net.network_address), int(net.broadcast_address)
    if "-" in text:
        lo, hi = text.split("-")
        return int(ipaddress.ip_address(lo)), int(ipaddress.ip_address(hi))
    value = int(ipaddress.ip_address(text))
    return value, value


def _port_bounds(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


class TableSim:
    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.chains: dict[str, Chain] = {c.name: c for c in ruleset.chains}
        self.sets = {s.name: s.elements for s in ruleset.sets}
        self.maps = {m.name: dict(m.elements) for m in ruleset.maps}

    def forward(self, packet: Packet) -> bool:
        """True if the packet is accepted (the base chain's policy is accept)."""
        return self._run("forward", packet) != DROP

    def _run(self, name: str, packet: Packet) -> str:
        for rule in self.chains[name].rules:
            if not all(self._match(m, packet) for m in rule.matches):
                continue
            outcome = self._apply(rule, packet)
            if outcome == "return":
                return CONTINUE
            if outcome != CONTINUE:
                return outcome
        return CONTINUE

    def _apply(self, rule: Rule, packet: Packet) -> str:
        for statement in rule.statements:
            found = _MARK_SET.fullmatch(statement)
            assert found, statement
            value = int(found.group(2), 16)
            packet.mark = packet.mark | value if found.group(1) == "|" else packet.mark & value
        if rule.log is not None:
            packet.logged.append(rule.log)
        return self._verdict(rule.verdict, packet)

    def _verdict(self, verdict: str, packet: Packet) -> str:
        if verdict in ("", "notrack"):
            return CONTINUE
        if verdict in (ACCEPT, DROP, "return"):
            return verdict
        if found := _VMAP.fullmatch(verdict):
            address = packet.saddr if found.group(2) == "saddr" else packet.daddr
            if address.version != FAMILY[found.group(1)]:
                return CONTINUE
            target = self.maps[found.group(3)].get(str(address))
            return CONTINUE if target is None else self._verdict(target, packet)
        if found := _PORT_VMAP.fullmatch(verdict):
            return self._port_vmap(found.group(1), packet)
        verb, _, chain = verdict.partition(" ")
        outcome = self._run(chain, packet)
        if verb == "jump":
            return outcome
        assert verb == "goto", verdict
        # goto: the current chain ends with the callee; its fall-through returns to our caller.
        return outcome if outcome != CONTINUE else "return"

    def _port_vmap(self, elements: str, packet: Packet) -> str:
        """An anonymous interval map: elements must not overlap (nft refuses them)."""
        targets = []
        for element in elements.split(", "):
            found = _PORT_ELEMENT.fullmatch(element)
            assert found, element
            lo = int(found.group(2))
            hi = int(found.group(3) or lo)
            if found.group(1) == packet.proto and lo <= packet.dport <= hi:
                targets.append(f"{found.group(4)} {found.group(5)}")
        assert len(targets) <= 1, f"overlapping port map elements: {targets}"
        return self._verdict(targets[0], packet) if targets else CONTINUE

    def _match(self, expr: str, packet: Packet) -> bool:
        if expr.startswith("ct state"):
            return False  # the packet is NEW: neither established/related nor invalid
        if found := _NAMED_PORT.fullmatch(expr):
            if packet.daddr.version != FAMILY[found.group(1)]:
                return False
            key = f"{packet.daddr} . {packet.proto} . {packet.dport}"
            return key in self.sets[found.group(2)]
        if found := _ADDR.fullmatch(expr):
            address = packet.saddr if found.group(2) == "saddr" else packet.daddr
            return address.version == FAMILY[found.group(1)] and self._in_addresses(
                found.group(3), address
            )
        if found := _PORT_SET.fullmatch(expr):
            return self._in_ports(found.group(1), packet)
        if found := _PROTO.fullmatch(expr):
            return packet.proto == found.group(1)
        if found := _DPORT.fullmatch(expr):
            lo = int(found.group(2))
            hi = int(found.group(3) or lo)
            return packet.proto == found.group(1) and lo <= packet.dport <= hi
        if found := _MARK_TEST.fullmatch(expr):
            bit = packet.mark & int(found.group(1), 16)
            return bit == 0 if found.group(2) == "==" else bit != 0
        raise AssertionError(f"the simulator does not know `{expr}`")

    def _in_addresses(self, name: str, address: IPAddress) -> bool:
        value = int(address)
        for element in self.sets[name]:
            family = ipaddress.ip_address(re.split("[/-]", element)[0]).version
            lo, hi = _address_bounds(element)
            if family == address.version and lo <= value <= hi:
                return True
        return False

    def _in_ports(self, name: str, packet: Packet) -> bool:
        for element in self.sets[name]:
            proto, ports = element.split(" . ")
            lo, hi = _port_bounds(ports)
            if proto == packet.proto and lo <= packet.dport <= hi:
                return True
        return False
