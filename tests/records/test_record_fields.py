"""The trial record's fields are declared once: replace() takes only those; runner-specific keys go through
with_extra() and are stored beside them."""

from __future__ import annotations

import pytest

from nas_harness.records import TrialRecord


def test_replace_refuses_unknown_names_and_with_extra_keeps_runner_keys() -> None:
    rec = TrialRecord(arch="a", val_acc=0.5)
    with pytest.raises(TypeError, match="no field 'varient'"):
        rec.replace(varient="no_se")
    with pytest.raises(TypeError, match="'val_acc' is a TrialRecord field"):
        rec.with_extra(val_acc=0.9)
    out = rec.replace(seed=3).with_extra(variant="no_se", alpha=1.2)
    attrs = out.to_attrs()
    assert attrs["variant"] == "no_se" and attrs["alpha"] == 1.2 and attrs["seed"] == 3
    back = TrialRecord.from_attrs(attrs)
    assert back.extra == {"variant": "no_se", "alpha": 1.2} and back.val_acc == 0.5
