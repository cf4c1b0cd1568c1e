"""The package's shape: module sizes, thin CLI, molecule-free flows, formulas once, docs in sync."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nct_md"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_over_450_lines_and_no_cli_module_over_80():
    too_long = [f"{p.relative_to(ROOT)}: {_lines(p)}" for p in SOURCES if _lines(p) > 450]
    fat_cli = [f"{p.name}: {_lines(p)}" for p in (PACKAGE / "cli").glob("*.py") if _lines(p) > 80]
    assert not too_long and not fat_cli, (too_long, fat_cli)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_flows_know_no_molecules_and_no_model():
    for path in (PACKAGE / "flows").glob("*.py"):
        bad = {name for name in _imports(path)
               if name.split(".")[0] in ("mdtraj", "openmm")
               or name.startswith(("nct_md.md", "nct_md.model", "nct_md.estimator"))}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def _definitions(pattern: str) -> list[str]:
    regex = re.compile(pattern, re.MULTILINE)
    return [str(p.relative_to(ROOT)) for p in SOURCES for _ in regex.finditer(p.read_text())]


@pytest.mark.parametrize("what, pattern", [
    ("log weights", r"^def log_weights\("),
    ("configuration log-density", r"^def configuration_log_prob\("),
    ("Phi/Psi", r"^def phi_psi\("),
    ("OpenMM System building", r"\.createSystem\("),
    ("objectives list", r"^OBJECTIVES\s*="),
    ("Boltzmann constant", r"^KB\s*="),
])
def test_each_formula_is_defined_once(what, pattern):
    assert len(_definitions(pattern)) == 1, (what, _definitions(pattern))


def _find(name: str) -> object | None:
    """The module ``name``, or the attribute of its longest importable prefix; None if neither."""
    module, attributes = name, []
    while "." in module:
        try:
            if importlib.util.find_spec(module) is not None:
                break
        except ModuleNotFoundError:  # a prefix is a module, not a package
            pass
        module, last = module.rsplit(".", 1)
        attributes.insert(0, last)
    obj = importlib.import_module(module)
    for attribute in attributes:
        obj = getattr(obj, attribute, None)
    return obj


def test_architecture_doc_names_only_modules_that_exist():
    text = (ROOT / "docs" / "architecture.md").read_text()
    dotted = set(re.findall(r"\bnct_md(?:\.[a-z_]+)+", text))
    relative = {f"nct_md.{m}" for m in re.findall(r"`((?:md|cv|train|model|generate|export|viz)"
                                                   r"\.[a-z_]+)", text)}
    missing = []
    for name in sorted(dotted | relative):
        if _find(name) is None:
            missing.append(name)
    assert not missing
    assert len(dotted) > 15


def test_no_file_points_outside_the_repository_for_its_design():
    offenders = [str(p.relative_to(ROOT)) for p in [*SOURCES, ROOT / "README.md"]
                 if "DESIGN" + ".md" in p.read_text()]
    assert not offenders
