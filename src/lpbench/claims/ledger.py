"""Reading ``config/claims.yaml``, and the columns of ``results/claims.csv``."""
from __future__ import annotations

from pathlib import Path

import yaml

VERDICTS = ("reproduced", "not reproduced", "not run", "inconclusive")
BASES = ("official code", "paper text", "our reconstruction")
COLUMNS = ["id", "paper", "statement", "paper_value", "ours", "verdict", "ci_low", "ci_high", "reason",
           "basis", "basis_pointer", "deviations", "point_verdict", "ci_detail", "note", "summary"]


def load_ledger(path: str | Path) -> list[dict]:
    claims = yaml.safe_load(Path(path).read_text())["claims"]
    ids = [c["id"] for c in claims]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{path}: duplicate claim ids {dup}")
    for c in claims:
        for key in ("id", "paper", "statement", "paper_value", "rule"):
            if key not in c:
                raise ValueError(f"{path}: claim {c.get('id', '?')} lacks '{key}'")
        if "basis" in c and c["basis"] not in BASES:
            raise ValueError(f"{path}: claim {c['id']}: basis must be one of {BASES}, not {c['basis']!r}")
    return claims
