"""The weight-sharing supernet evaluator (``[evaluator] kind = "supernet"`` with a ``[supernet]`` table).

One supernet over the study's own search space (:class:`Supernet`), trained once per study (uniform single-path
sampling or the sandwich rule with in-place distillation; :func:`train_supernet`), then every trial's arch is
scored with its inherited weights (:class:`SupernetEvaluator`).  Design and measurements: ``docs/supernet.md``.
"""

from nas_harness.evaluators import register_evaluator
from nas_harness.supernet._config import SupernetConfig
from nas_harness.supernet._evaluator import ACCURACY_NOTE, SupernetEvaluator
from nas_harness.supernet._net import Supernet, largest_arch, smallest_arch, subnet_state_dict, why_not_subnet
from nas_harness.supernet._train import step_archs, train_supernet

register_evaluator("supernet", SupernetEvaluator, SupernetConfig)  # the class is its factory

__all__ = ["ACCURACY_NOTE", "Supernet", "SupernetConfig", "SupernetEvaluator", "largest_arch", "smallest_arch",
           "step_archs", "subnet_state_dict", "train_supernet", "why_not_subnet"]
