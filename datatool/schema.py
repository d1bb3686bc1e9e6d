"""JSON Schema export of every model a user writes or reads.

``datatool schema`` writes one ``<name>.schema.json`` per entry of
:data:`SCHEMA_MODELS` into ``schemas/``; a test keeps the folder current.
Models are named as ``"module:Class"`` so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from pydantic import BaseModel

SCHEMA_MODELS: dict[str, str] = {
    "layout": "datatool.layout:DatasetLayout",
    "check-report": "datatool.findings:Report",
    "check-options": "datatool.checks:CheckOptions",
    "crop-plan": "datatool.build:CropPlan",
    "build-manifest": "datatool.build:BuildManifest",
    "merge-manifest": "datatool.merge:MergeManifest",
    "score-params": "datatool.metrics.results:ScoreParams",
    "scores": "datatool.metrics.results:ScoredPrediction",
    "quality-report": "datatool.report.model:QualityReport",
    "evaluation-metrics": "datatool.metrics.results:SweepResult",
}


def model_class(spec: str) -> type[BaseModel]:
    """Import ``"module:Class"``."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def schema_documents() -> dict[str, str]:
    """File name to JSON text, for every registered model (deterministic)."""
    docs = {}
    for name, spec in sorted(SCHEMA_MODELS.items()):
        schema = model_class(spec).model_json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        docs[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return docs


def write_schemas(folder: str | Path) -> list[Path]:
    """Write every schema into ``folder`` atomically; return the paths written."""
    from datatool.io import atomic_write_text

    folder = Path(folder)
    written = []
    for filename, text in schema_documents().items():
        path = folder / filename
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
        written.append(path)
    return written
