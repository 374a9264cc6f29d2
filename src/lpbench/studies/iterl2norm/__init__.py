"""IterL2Norm precision, latency and energy study (claims ITER-1 … ITER-3; ITER-4 is model level).

Everything the rule file ``workflow/rules/iterl2norm.smk`` computes outside of model evaluation lives
here; the scripts ``scripts/iterl2norm_*.py`` only read their inputs and call these functions.

- :mod:`~lpbench.studies.iterl2norm.defaults`: the paper's numbers, the config section's defaults
  (:data:`DEFAULTS`, :func:`settings`).
- :mod:`~lpbench.studies.iterl2norm.precision`: error vs iterations per format, input and length against
  the float64 reference of the same input, the two floors (``E_round``, ``E_dp``), iterations to the
  format's precision (ITER-1), the 9-case comparison with FISR (ITER-2), the initialisation study.
- :mod:`~lpbench.studies.iterl2norm.hardware`: norm-macro latency (ITER-3) and energy per normalization.
- :mod:`~lpbench.studies.iterl2norm.models`: recorded real norm inputs and the model-level table (ITER-4).
- :mod:`~lpbench.studies.iterl2norm.figures`: the figures.

The definitions (unit-scale inputs, floors, "converged to the format's precision", the 9-case rule, the
initialisation study), each fixed before any result was read, are in docs/papers/iterl2norm.md.
"""
from lpbench.studies.iterl2norm.defaults import DEFAULTS, OPT_DIMS, PAPER_ITERS, PAPER_WINS, SMALL_DIMS, settings
from lpbench.studies.iterl2norm.figures import error_figure, init_figure, latency_figure, real_error_figure
from lpbench.studies.iterl2norm.hardware import energy_table, latency_table
from lpbench.studies.iterl2norm.models import model_table, record_norm_inputs
from lpbench.studies.iterl2norm.precision import (convergence_table, error_curves, init_of, init_table, inv_sqrt,
                                                  normwise_error, precision_study, sign_test, synthetic, unit_scale,
                                                  wins_by_init, wins_table)

__all__ = ["DEFAULTS", "OPT_DIMS", "PAPER_ITERS", "PAPER_WINS", "SMALL_DIMS", "settings", "error_figure",
           "init_figure", "latency_figure", "real_error_figure", "energy_table", "latency_table", "model_table",
           "record_norm_inputs", "convergence_table", "error_curves", "init_of", "init_table", "inv_sqrt",
           "normwise_error", "precision_study", "sign_test", "synthetic", "unit_scale", "wins_by_init", "wins_table"]
