"""libnftables binding: atomic table loads, errors that keep the old table, JSON listing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kanal.dataplane.netns import create_netns, delete_netns, entered
from kanal.dataplane.nft import Nft, load_table_atomically
from kanal.errors import DataplaneError

pytestmark = pytest.mark.kernel

TABLE_V1 = """\
table inet kanal {
    set pods { type ipv4_addr; elements = { 10.244.1.2, 10.244.1.3 } }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        ip daddr @pods tcp dport 80 drop
    }
}
"""
TABLE_V2 = TABLE_V1.replace("tcp dport 80", "tcp dport 443")


@pytest.fixture
def nft(netns_prefix: str) -> Iterator[Nft]:
    name = netns_prefix + "nft"
    create_netns(name)
    try:
        with Nft(name) as ctx:
            yield ctx
    finally:
        delete_netns(name)


def _rules(nft: Nft) -> list[dict[str, object]]:
    document = nft.run_json("list table inet kanal")
    assert isinstance(document, dict)
    return [item["rule"] for item in document["nftables"] if "rule" in item]


def test_loading_the_same_table_twice_does_not_double_rules(nft: Nft) -> None:
    load_table_atomically(nft, TABLE_V1)
    load_table_atomically(nft, TABLE_V1)
    assert len(_rules(nft)) == 2
    assert nft.run("list table inet kanal").count("tcp dport 80 drop") == 1


def test_a_reload_replaces_the_rules(nft: Nft) -> None:
    load_table_atomically(nft, TABLE_V1)
    load_table_atomically(nft, TABLE_V2)
    text = nft.run("list table inet kanal")
    assert "tcp dport 443 drop" in text and "tcp dport 80 " not in text


def test_a_syntax_error_raises_with_nft_message_and_keeps_the_previous_table(nft: Nft) -> None:
    load_table_atomically(nft, TABLE_V1)
    before = nft.run("list ruleset")
    with pytest.raises(DataplaneError, match=r"(?s)netns `kt[0-9a-f]{4}-nft`.*syntax error"):
        load_table_atomically(nft, TABLE_V2.replace("drop", "dorp"))
    assert nft.run("list ruleset") == before


def test_a_semantic_error_late_in_the_buffer_applies_nothing(nft: Nft) -> None:
    load_table_atomically(nft, TABLE_V1)
    before = nft.run("list ruleset")
    commands = "add element inet kanal pods { 10.244.1.9 }\nadd element inet kanal nosuch { 1 }"
    # nft 1.0.6 may point its `^^^` at the wrong command of a rejected batch; the kernel's
    # verdict (ENOENT, whole batch refused) is what matters.
    with pytest.raises(DataplaneError, match="No such file or directory"):
        nft.run(commands)
    assert nft.run("list ruleset") == before


def test_list_as_json_describes_table_set_and_chain(nft: Nft) -> None:
    load_table_atomically(nft, TABLE_V1)
    document = nft.run_json("list table inet kanal")
    assert isinstance(document, dict)
    kinds = {next(iter(item)) for item in document["nftables"]}
    assert {"metainfo", "table", "set", "chain", "rule"} <= kinds
    # JSON output is per call: the context goes back to text output.
    assert nft.run("list tables").strip() == "table inet kanal"


def test_the_context_stays_bound_to_its_netns_when_used_from_outside(
    nft: Nft, netns_prefix: str
) -> None:
    table = netns_prefix.replace("-", "_") + "probe"  # unique per run, never on the host
    load_table_atomically(nft, f"table inet {table} {{ }}", name=table)  # from this thread
    with entered(netns_prefix + "nft"), Nft() as inside:
        assert f"table inet {table}" in inside.run("list tables")
    with Nft() as host:
        assert f"table inet {table}" not in host.run("list tables")


def test_using_a_closed_context_is_a_bug(nft: Nft) -> None:
    nft.close()
    with pytest.raises(RuntimeError, match="after close"):
        nft.run("list tables")
    nft.close()


def test_a_missing_netns_raises_dataplane_error(netns_prefix: str) -> None:
    with pytest.raises(DataplaneError, match="missing"):
        Nft(netns_prefix + "missing")
