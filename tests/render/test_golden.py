"""Golden tests: small clusters (tests/render/golden/*.yaml) rendered per node, compared byte for
byte with the files beside them. `KANAL_UPDATE_GOLDEN=1 pytest tests/render` rewrites them; read
the diff before committing it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kanal.engine import PolicyEngine
from kanal.model.load import load_manifests
from kanal.render import RenderOptions, Ruleset, render_node, table_text

GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = sorted(p.stem for p in GOLDEN.glob("*.yaml"))
UPDATE = os.environ.get("KANAL_UPDATE_GOLDEN") == "1"


def _engine(scenario: str) -> PolicyEngine:
    return PolicyEngine.from_manifests(load_manifests([str(GOLDEN / f"{scenario}.yaml")]))


def _nodes(engine: PolicyEngine) -> list[str]:
    return sorted({p.node_name for p in engine.pods().values() if p.node_name})


def _compare(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path.name} is missing: run with KANAL_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs: run with KANAL_UPDATE_GOLDEN=1"


def _log_json(ruleset: Ruleset) -> str:
    return json.dumps([e.to_json() for e in ruleset.log], indent=2) + "\n"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_node_renders_as_its_golden_file(scenario: str) -> None:
    engine = _engine(scenario)
    for node in _nodes(engine):
        ruleset = render_node(engine, node)
        assert ruleset.problems == ()
        _compare(GOLDEN / f"{scenario}.{node}.nft", table_text(ruleset))


def test_verdict_logging_renders_nflog_statements_and_the_id_table() -> None:
    ruleset = render_node(_engine("admin-tiers"), "n1", RenderOptions(log_group=5))
    _compare(GOLDEN / "admin-tiers.n1.log5.nft", table_text(ruleset))
    _compare(GOLDEN / "admin-tiers.log.json", _log_json(ruleset))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendering_twice_gives_identical_text(scenario: str) -> None:
    first, second = _engine(scenario), _engine(scenario)
    for node in _nodes(first):
        assert table_text(render_node(first, node)) == table_text(render_node(second, node))
