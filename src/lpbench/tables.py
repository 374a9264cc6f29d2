"""Result JSONs -> aggregated tables (pandas), written as CSV and Markdown."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

PPL_COLUMNS = ["model", "corpus", "method", "kind", "params", "perplexity", "ppl_ci_low", "ppl_ci_high", "mean_nll",
               "windows", "seqlen", "nonfinite_windows", "error", "caveat"]
ENC_COLUMNS = ["model", "corpus", "method", "kind", "params", "relative_error", "cosine", "windows",
               "nonfinite_windows", "error"]


def load_results(paths) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def ppl_ci(m: dict) -> dict:
    """95 % block-bootstrap CI of the perplexity from the stored per-token NLLs (empty without them)."""
    from lpbench.bootstrap import as_series, perplexity_ci

    series = as_series(m.get("token_nll")) if m.get("kind") == "perplexity" else None
    if series is None:
        return {"ppl_ci_low": None, "ppl_ci_high": None}
    ci = perplexity_ci(series)
    return {"ppl_ci_low": ci["ci_low"], "ppl_ci_high": ci["ci_high"]}


def _row(r: dict) -> dict:
    m = r["metrics"]
    return {**ppl_ci(m), "model": r["model"]["id"], "corpus": r["corpus"]["id"], "method": r["method"]["name"],
            "kind": r["method"]["kind"], "params": json.dumps(r["method"]["params"], sort_keys=True),
            "perplexity": m.get("perplexity"), "mean_nll": m.get("mean_nll"),
            "relative_error": m.get("relative_error"), "cosine": m.get("cosine"),
            "windows": m.get("windows"), "seqlen": m.get("seqlen"),
            "nonfinite_windows": len(m.get("nonfinite_windows", [])), "error": m.get("error") or "",
            "caveat": r["model"].get("caveat", "")}


def perplexity_table(results: list[dict]) -> pd.DataFrame:
    rows = [_row(r) for r in results if r["metrics"].get("kind") == "perplexity"]
    return pd.DataFrame(rows, columns=PPL_COLUMNS)


def encoder_table(results: list[dict]) -> pd.DataFrame:
    rows = [_row(r) for r in results if r["metrics"].get("kind") == "encoder_error"]
    return pd.DataFrame(rows, columns=ENC_COLUMNS)


def write_table(df: pd.DataFrame, csv: str | Path, md: str | Path | None = None, title: str = "",
                drop_md: tuple[str, ...] = ("params", "caveat")) -> None:
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv, index=False)
    if md:
        shown = df.drop(columns=[c for c in drop_md if c in df.columns])
        notes = sorted({c for c in df.get("caveat", pd.Series(dtype=str)) if c})
        text = (f"# {title}\n\n" if title else "") + (shown.to_markdown(index=False, floatfmt=".4g")
                                                      if len(shown) else "_no results_") + "\n"
        if notes:
            text += "\nCaveats:\n" + "".join(f"- {n}\n" for n in notes)
        Path(md).write_text(text)
