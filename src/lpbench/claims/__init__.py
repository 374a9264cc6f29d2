"""Claims ledger: every paper claim, the paper's number, ours, and a verdict computed from results.

``config/claims.yaml`` declares each claim (ids from the papers' notes) with a ``rule`` that decides its
verdict from the aggregated result tables; ``workflow/schemas/claims.schema.yaml`` is its schema, checked
before any job runs. A verdict is one of

``reproduced`` / ``not reproduced``   the rule ran on measured numbers
``not run``                           the results the rule needs do not exist (with the reason)
``inconclusive``                      results exist but cannot decide (NaN, or a CI across the threshold)

and is never written by hand. Every rule kind and option, the confidence intervals and the basis of a
claim are described in docs/claims.md. Modules:

:mod:`~lpbench.claims.ledger`   loading and schema check (light: the Snakefile calls it while parsing)
:mod:`~lpbench.claims.rules`    the rule-kind registry (:func:`register`) and :func:`evaluate_claim`
:mod:`~lpbench.claims.checks`   ``table_check`` (point values or each row's interval), ``sensitivity``
:mod:`~lpbench.claims.compare`  comparative kinds and the bootstrap CIs of their perplexity ratios
:mod:`~lpbench.claims.report`   ``results/claims.md`` (a one-screen summary, then one section per claim)

Thresholds (``max_rel``, ``slack_rel``, ``value``) are declared in the ledger with their rationale before
any result is read, and are never adjusted to make a claim pass.
"""
from importlib import import_module

# Names resolved on first use, so the Snakefile's ledger check (lpbench.claims.ledger) stays light
_HOME = {"load_nll": "compare", "to_markdown": "report", "RULE_KINDS": "rules", "evaluate_claim": "rules",
         "evaluate_ledger": "rules", "register": "rules", "BASES": "ledger", "COLUMNS": "ledger",
         "VERDICTS": "ledger", "LedgerError": "ledger", "check_ledger": "ledger", "load_ledger": "ledger"}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f"lpbench.claims.{_HOME[name]}"), name)
    raise AttributeError(f"module 'lpbench.claims' has no attribute '{name}'")
