"""``nas-harness schema``: the file formats as JSON Schema and as the key tables shipped in docs/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas_harness.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(("kind", "doc"), [("study", "study-file.md"), ("ablation", "ablation-file.md"),
                                         ("scaling-curves", "scaling-curves.md")])
def test_schema_and_the_docs_key_table_are_current(kind: str, doc: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "name" in schema["required"] and schema["additionalProperties"] is False
    assert main(["schema", kind, "--markdown"]) == 0
    table = capsys.readouterr().out
    assert table.strip() in (DOCS / doc).read_text(), f"docs/{doc} is stale: regenerate it with " \
        f"`nas-harness schema {kind} --markdown`"
