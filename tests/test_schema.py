"""schemas/ is generated from the models and must be current."""

from __future__ import annotations

from pathlib import Path

from datatool.schema import SCHEMA_MODELS, model_class, schema_documents

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def test_schemas_folder_is_current() -> None:
    expected = schema_documents()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMAS.glob("*.schema.json")}
    stale = sorted(name for name in expected if on_disk.get(name) != expected[name])
    extra = sorted(set(on_disk) - set(expected))
    assert not stale and not extra, (
        f"schemas/ is out of date (stale: {stale}, unknown: {extra}); run `datatool schema`"
    )


def test_every_field_is_described() -> None:
    for spec in SCHEMA_MODELS.values():
        model = model_class(spec)
        missing = [n for n, f in model.model_fields.items() if not f.description]
        assert not missing, f"{spec}: fields without description: {missing}"


def test_schema_command_writes_the_same_files(tmp_path: Path, run_cli) -> None:
    code, out, _ = run_cli("schema", "--out", tmp_path)
    assert code == 0
    for name, text in schema_documents().items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text
