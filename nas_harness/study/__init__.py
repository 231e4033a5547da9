"""Search studies: TOML study files, objectives, samplers/pruners, progress, orchestration and resume.

Heavy dependencies (optuna, torch, ray) are imported inside functions, so importing this package is cheap.
"""

from nas_harness.objectives import BudgetConstraints, Objective, mnasnet_reward
from nas_harness.study.config import SECTIONS, StudyConfig, load_study, schema_markdown, study_json_schema, validate
from nas_harness.study.samplers import make_pruner, make_sampler, project_params, reference_arch, reference_trials

__all__ = ["SECTIONS", "BudgetConstraints", "Objective", "StudyConfig", "load_study", "make_pruner",
           "make_sampler", "mnasnet_reward", "project_params", "reference_arch", "reference_trials",
           "schema_markdown", "study_json_schema", "validate"]
