"""UN-3's decision ("outlier filtration prevents the collapse that occurs without it under outliers") as a
table the claims ledger reads with a plain ``table_check``.

An arm (UN with / without filtration, one setting, every seed) *collapses* when at least one of its runs
collapsed (collapse definition: :mod:`.train`). Per setting with both arms:

====================  ====================  ===============  ==================================================
without filtration    with filtration       outcome          reason
====================  ====================  ===============  ==================================================
collapses             does not collapse     reproduced       filtration prevented the collapse
collapses             collapses             not reproduced   collapse with and without filtration
does not collapse     collapses             not reproduced   collapse only with filtration
does not collapse     does not collapse     inconclusive     no collapse without filtration: premise not met
====================  ====================  ===============  ==================================================

Over all settings (the ``overall`` row, the one the ledger checks): not reproduced if any setting is, else
reproduced if any setting is, else inconclusive (no setting met the premise). ``reproduced`` is 1 / 0 for
the first two and NaN for inconclusive, so that a ``table_check`` of ``reproduced == 1`` gives
reproduced / not reproduced / inconclusive; ``outcome`` and ``reason`` say which in words.
"""
from __future__ import annotations

import pandas as pd

PREMISE_NOT_MET = "no collapse without filtration: premise not met"
REASONS = {(True, False): ("reproduced", "filtration prevented the collapse that occurred without it"),
           (True, True): ("not reproduced", "collapse with and without filtration"),
           (False, True): ("not reproduced", "collapse only with filtration"),
           (False, False): ("inconclusive", PREMISE_NOT_MET)}
_CODE = {"reproduced": 1.0, "not reproduced": 0.0, "inconclusive": float("nan")}
COLUMNS = ["scope", "task", "stress", "seeds", "collapsed_without_filtration", "collapsed_with_filtration",
           "outcome", "reason", "reproduced"]


def un3_outcome(collapsed_without: int, collapsed_with: int) -> tuple[str, str]:
    """(outcome, reason) of one setting from its arms' collapsed-run counts."""
    return REASONS[(int(collapsed_without) > 0, int(collapsed_with) > 0)]


def un3_table(filt: pd.DataFrame) -> pd.DataFrame:
    """Per-setting rows of the filtration table (``collapsed_with_filtration``,
    ``collapsed_without_filtration``, ``task``, ``stress``, ``seeds``) and the ``overall`` row."""
    rows = []
    for r in filt.to_dict("records"):
        outcome, reason = un3_outcome(r["collapsed_without_filtration"], r["collapsed_with_filtration"])
        rows.append({"scope": "setting", "task": r["task"], "stress": int(r.get("stress", 0)),
                     "seeds": int(r.get("seeds", 0)),
                     "collapsed_without_filtration": int(r["collapsed_without_filtration"]),
                     "collapsed_with_filtration": int(r["collapsed_with_filtration"]),
                     "outcome": outcome, "reason": reason, "reproduced": _CODE[outcome]})
    if rows:
        outcomes = [r["outcome"] for r in rows]
        overall = next((o for o in ("not reproduced", "reproduced") if o in outcomes), "inconclusive")
        named = [f"{r['task']}: {r['reason']}" for r in rows]
        rows.append({"scope": "overall", "task": "all settings", "stress": int(any(r["stress"] for r in rows)),
                     "seeds": sum(r["seeds"] for r in rows),
                     "collapsed_without_filtration": sum(r["collapsed_without_filtration"] for r in rows),
                     "collapsed_with_filtration": sum(r["collapsed_with_filtration"] for r in rows),
                     "outcome": overall,
                     "reason": PREMISE_NOT_MET if overall == "inconclusive" else "; ".join(named),
                     "reproduced": _CODE[overall]})
    return pd.DataFrame(rows, columns=COLUMNS)
