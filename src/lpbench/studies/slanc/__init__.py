"""SLaNC study: measurements on real activations (:mod:`~lpbench.studies.slanc.measure`: every norm input of
the FP32 model through the emulated low-precision norm of each variant, overflow / underflow events, the
prediction check, the stress case) and the tables and figure built from them
(:mod:`~lpbench.studies.slanc.tables`). What is measured and why: docs/papers/slanc.md.
"""
from lpbench.studies.slanc.measure import (EXTENSION_ROLES, RESIDUAL_ROLES, STRESS_FAMILIES, UNDERFLOW_RECORDS,
                                           measure, reparametrize, residual_norms, restore, scope_of)
from lpbench.studies.slanc.tables import (TABLE_COLUMNS, VARIANT_ORDER, cost_table, layer_rows, measurement_tables,
                                          summary_rows, sumsq_figure, sumsq_long)

__all__ = ["EXTENSION_ROLES", "RESIDUAL_ROLES", "STRESS_FAMILIES", "UNDERFLOW_RECORDS", "measure", "reparametrize",
           "residual_norms", "restore", "scope_of", "TABLE_COLUMNS", "VARIANT_ORDER", "cost_table", "layer_rows",
           "measurement_tables", "summary_rows", "sumsq_figure", "sumsq_long"]
