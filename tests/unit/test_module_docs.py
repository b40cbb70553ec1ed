"""Every module's DOCUMENTATION, EXAMPLES and RETURN are YAML that ansible-doc can read."""

import ast
from pathlib import Path

import pytest
import yaml

MODULES = sorted(
    (Path(__file__).resolve().parents[2] / "collections/ansible_collections/sipwave/platform")
    .joinpath("plugins/modules")
    .glob("*.py")
)


def documentation(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_module_documentation_is_valid_yaml(path):
    parts = documentation(path)
    doc = yaml.safe_load(parts["DOCUMENTATION"])
    assert doc["module"] == path.stem
    yaml.safe_load(parts["EXAMPLES"])
    yaml.safe_load(parts["RETURN"])
