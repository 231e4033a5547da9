"""The ablation file is validated before anything runs: one-line ConfigErrors naming the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_harness.ablation import load_ablation, parse_ablation
from nas_harness.errors import ConfigError
from nas_harness.presets import efficientnet_b0

REPO = Path(__file__).resolve().parents[2]


def _cfg(**over: object) -> dict:
    d: dict = {
        "name": "t",
        "variants": ["baseline", "no_se"],
        "seeds": 2,
        "data": {"dataset": "synthetic", "resolution": 16},
        "train": {"steps": 2, "batch_size": 8},
    }
    d.update(over)
    return d


def test_defaults_and_resolution() -> None:
    cfg = parse_ablation(_cfg())
    assert cfg.base_arch == efficientnet_b0()
    assert cfg.seeds == (0, 1)
    assert cfg.baseline == "baseline"
    assert cfg.storage_url == f"sqlite:///{Path('results') / 't' / 'ablation.db'}"
    assert cfg.run.backend == "local" and cfg.trial.evaluate_test is True
    assert cfg.archs["no_se"] == efficientnet_b0().replace_stages(se=None)
    assert parse_ablation(_cfg(seeds=[3, 7])).seeds == (3, 7)
    assert cfg.with_seeds(4).seeds == (0, 1, 2, 3)
    assert cfg.with_backend("ray").run.backend == "ray"
    assert cfg.with_storage("journal:x.log").storage_url == "journal:x.log"
    assert parse_ablation(cfg.to_dict()) == cfg
    # default variant set is the four the issue asks for
    d = _cfg()
    del d["variants"]
    assert parse_ablation(d).variants == ("baseline", "no_se", "no_skip", "neither")


def test_user_variant_in_file_and_any_base_arch() -> None:
    cfg = parse_ablation(_cfg(base="b1", variants=["baseline", "k5"],
                              variant={"k5": {"overrides": [{"stage": 3, "override": "k5_e4"}]}}))
    assert cfg.archs["k5"].stages[2].kernel == 5
    assert cfg.archs["baseline"] != efficientnet_b0()
    assert cfg.variant["k5"].to_dict()["overrides"] == [{"stage": [3], "override": "k5_e4"}]


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"seeds": 0}, "seeds: at least one seed"),
        ({"seeds": []}, "seeds: at least one seed"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"seeds": [0, -1]}, "seeds[1]"),
        ({"seeds": "3"}, "seeds = '3' is invalid"),
        ({"variants": ["baseline", "no_ses"]}, "variants[1]: unknown variant 'no_ses'"),
        ({"variants": []}, "variants = () is invalid"),
        ({"variants": ["no_se", "no_se"]}, "distinct"),
        ({"variant": {"v": {"overrides": [{"stage": 2, "override": "k4"}]}}, "variants": ["v"]}, "odd kernel"),
        ({"variant": {"no_se": {"act": "relu"}}}, "clashes with a built-in"),
        ({"base": "b9"}, "base:"),
        ({"arch": "b0"}, "arch: renamed to 'base'"),
        ({"stem_stride": 1}, "stem_stride: moved to [trial]"),
        ({"backend": {"kind": "ray"}}, "backend: moved: [run] backend"),
        ({"baseline": "no_skip"}, "baseline:"),
        ({"colour": 1}, "colour: unknown key"),
        ({"name": "../x"}, "name:"),
        ({"trial": {"stem_stride": 0}}, "trial.stem_stride"),
        ({"trial": {"stem_stride": 3}}, "trial.stem_stride = 3 is invalid: input should be 1 or 2"),
        ({"data": {"dataset": "mnist"}}, "data.dataset"),
        ({"data": {"resolution": "big"}}, "data.resolution"),
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"train": {"nope": 1}}, "train.nope"),
        ({"run": {"backend": "slurm"}}, "run.backend"),
        ({"ray": {"gpus_per_trial": -1}}, "ray.gpus_per_trial"),
        ({"ray": {"cpu": 1}}, "ray.cpu: unknown key"),
        ({"trial": {"cache": True}}, "trial.cache: True has no effect"),
        ({"train": {"lr": float("inf")}}, "train.lr = inf is invalid"),
    ],
)
def test_bad_config_is_one_line_error_naming_the_key(over: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_ablation(_cfg(**over))
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_name_and_bad_files(tmp_path: Path) -> None:
    d = _cfg()
    del d["name"]
    with pytest.raises(ConfigError, match="name: required"):
        parse_ablation(d)
    with pytest.raises(ConfigError, match="no such file"):
        load_ablation(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\nseeds = [1,\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_ablation(bad)


def test_shipped_ablation_file_is_valid() -> None:
    cfg = load_ablation(REPO / "studies" / "ablation_b0.toml")
    assert cfg.variants == ("baseline", "no_se", "no_skip", "neither")
    assert cfg.data.dataset == "fashion_mnist"
    assert len(cfg.seeds) >= 2


def test_shipped_full_recipe_is_b0_half_width_on_the_full_training_file() -> None:
    from nas_harness.presets import efficientnet_b0
    from nas_harness.scaling import scale_arch

    cfg = load_ablation(REPO / "studies" / "fashion_mnist_full.toml")
    assert cfg.base_arch == scale_arch(efficientnet_b0(), width=0.5) and cfg.trial.stem_stride == 1
    assert cfg.variants == ("baseline",) and cfg.data.train_subset is None and cfg.data.per_class is None
    assert cfg.data.resolution == 28 and cfg.train.epochs == 10 and set(cfg.train.augment) == {"crop", "flip"}
