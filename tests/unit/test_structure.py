"""Structure rules of the collection that review alone would let slip."""

from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / (
    "collections/ansible_collections/sipwave/platform/plugins"
)
MAX_LINES = 400


def test_no_plugin_file_is_over_400_lines():
    """A file that grows past this holds more than one responsibility: split it."""
    long = {
        str(path.relative_to(PLUGINS)): lines
        for path in PLUGINS.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_migration_engine_has_one_module_per_responsibility():
    engine = {path.stem for path in (PLUGINS / "module_utils/wave").glob("*.py")}
    assert {"model", "tables", "plan", "transaction", "run", "reconcile", "rollback",
            "consent", "outcomes"} <= engine  # fmt: skip
    assert not (PLUGINS / "module_utils/migration_db.py").exists()
