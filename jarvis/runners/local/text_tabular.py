"""Tabular classification with scikit-learn models from the Hub, loaded safely with skops.

A Hub sklearn repo describes itself in config.json ({"sklearn": {"model": {"file": ...},
"model_format": "skops"|"pickle", "columns": [...]}}). Only the skops format is loaded, with
skops.io's loader, which refuses any type it does not trust; pickle/joblib files can run
arbitrary code when loaded, so those repos are refused with a clear message.
Input: CSV text, or the name of a .csv file in the session directory.
"""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local.loading import first_line
from jarvis.runners.local.text_support import num, text_input

log = logging.getLogger(__name__)

MAX_ROWS = 10_000
SHOWN_ROWS = 20


class TabularClassificationRunner(Runner):
    """Classifies each row of a table with a skops-format scikit-learn model."""
    task = "tabular-classification"

    def load(self, model_id: str, device: Device) -> dict[str, Any]:
        with open(_download(model_id, "config.json")) as fh:
            config = json.load(fh)
        sk = config.get("sklearn") if isinstance(config, dict) else None
        if not isinstance(sk, dict) or not (sk.get("model") or {}).get("file"):
            raise TaskError(f"{model_id} is not a scikit-learn model repo (its config.json has no sklearn "
                            "model file); Jarvis runs tabular models saved with skops")
        filename = str(sk["model"]["file"])
        fmt = str(sk.get("model_format") or ("skops" if filename.endswith(".skops") else "pickle")).lower()
        if fmt != "skops":
            raise TaskError(f"{model_id} stores its model as a {fmt} file ({filename}), which can run arbitrary "
                            "code when loaded, so Jarvis will not load it; pick a tabular model saved in "
                            "skops format (tag 'skops')")
        import skops.io  # it imports torch (through scikit-learn's array API support): here, not at startup
        path = _download(model_id, filename)
        untrusted = skops.io.get_untrusted_types(file=path)
        if untrusted:
            raise TaskError(f"{model_id} contains types skops does not trust ({', '.join(untrusted[:5])}); "
                            "Jarvis will not load it; pick another tabular model")
        try:
            model = skops.io.load(path)
        except Exception as exc:
            raise TaskError(f"could not load {model_id} with skops: {first_line(exc)}") from exc
        columns = [str(c) for c in (sk.get("columns") or getattr(model, "feature_names_in_", []) or [])]
        return {"model": model, "columns": columns, "model_id": model_id}

    def run(self, loaded: dict[str, Any], inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        table = _read_table(text_input(inputs, "table"), ctx, loaded["columns"])
        truncated = len(table) > MAX_ROWS
        table = table.iloc[:MAX_ROWS]
        columns = loaded["columns"]
        if columns:
            missing = [c for c in columns if c not in table.columns]
            if missing:
                raise TaskError(f"the table lacks the columns this model needs: {', '.join(missing)} "
                                f"(expected: {', '.join(columns)})")
            table = table[columns]
        model = loaded["model"]
        try:
            labels = model.predict(table)
            probabilities = model.predict_proba(table) if hasattr(model, "predict_proba") else None
        except Exception as exc:
            raise TaskError(f"the model could not classify this table: {first_line(exc)}") from exc
        rows = []
        for i, label in enumerate(labels):
            row: dict[str, Any] = {"row": i + 1, "label": _plain(label)}
            if probabilities is not None:
                row["score"] = num(max(probabilities[i]))
            rows.append(row)
        lines = [f"row {r['row']}: {r['label']}" + (f" ({r['score']:.2f})" if "score" in r else "")
                 for r in rows[:SHOWN_ROWS]]
        if len(rows) > SHOWN_ROWS:
            lines.append(f"... and {len(rows) - SHOWN_ROWS} more rows")
        return TaskOutputs(text="\n".join(lines), detail={"predictions": rows, "columns": columns,
                                                          "truncated": truncated})


def _download(model_id: str, filename: str) -> str:
    """A file of the model repo (from the HF cache or the Hub), with a TaskError saying what failed."""
    from huggingface_hub import hf_hub_download
    try:
        return hf_hub_download(model_id, filename)
    except Exception as exc:
        raise TaskError(f"could not get {filename} of {model_id}: {first_line(exc)} "
                        "(is the model downloaded, or is the network reachable?)") from exc


def _plain(value: Any) -> Any:
    """A numpy scalar as a plain Python value, for JSON."""
    return value.item() if hasattr(value, "item") else value


def _session_file(name: str, ctx: RunContext) -> Path:
    """A .csv named in the task, only from this session's directory."""
    probe = ctx.new_file("table-probe", ".tmp")
    root = probe.parent.resolve()
    probe.unlink(missing_ok=True)
    candidate = Path(name)
    path = (candidate if candidate.is_absolute() else root / candidate.name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        path = (root / candidate.name).resolve()
    if not path.is_file():
        raise TaskError(f"{candidate.name} is not a file of this session: attach the .csv first, "
                        "or paste the table as CSV text")
    return path


def _read_table(text: str, ctx: RunContext, columns: list[str]) -> pd.DataFrame:
    """A DataFrame from CSV text (or a session .csv); a header-less table gets the model's columns."""
    if "\n" not in text and text.lower().endswith(".csv"):
        text = _session_file(text, ctx).read_text(encoding="utf-8", errors="replace")
    try:
        table = pd.read_csv(io.StringIO(text), sep=None, engine="python")
    except Exception as exc:  # the separator sniffer gave up: plain comma-separated parsing next
        log.debug("CSV dialect not detected (%s); reading it as comma-separated", exc)
        try:
            table = pd.read_csv(io.StringIO(text))
        except Exception as exc:
            raise TaskError(f"could not read the table as CSV: {first_line(exc)}") from exc
    header = {str(c).strip() for c in table.columns}
    if columns and not set(columns) & header and _numeric(table.columns) and table.shape[1] == len(columns):
        table = pd.read_csv(io.StringIO(text), sep=None, engine="python", header=None, names=columns)
    table.columns = [str(c).strip() for c in table.columns]
    if table.empty:
        raise TaskError("the table has no rows; give a header line and at least one row of values")
    return table


def _numeric(names: Any) -> bool:
    try:
        [float(str(n)) for n in names]
        return True
    except ValueError:
        return False
