"""Every docstring example in the packages runs and prints what it shows (doctest, one test per docstring).

Examples run in the module's namespace, as ``python -m doctest`` runs them, in JAX's default float32 mode.
"""

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("reservoir", "readout", "hardware_sim", "experiments")


def _modules_with_examples() -> dict[str, int]:
    """{module name: number of ``>>>`` prompts in its source}, for every source file that has any."""
    prompts = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            count = sum(line.lstrip().startswith(">>>") for line in path.read_text().splitlines())
            if count:
                parts = path.relative_to(ROOT).with_suffix("").parts
                prompts[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = count
    return prompts


PROMPTS = _modules_with_examples()
DOCTESTS = [test for name in PROMPTS for test in doctest.DocTestFinder().find(importlib.import_module(name))
            if test.examples]


@pytest.mark.parametrize("module", PROMPTS)
def test_every_prompt_is_in_a_docstring_doctest_finds(module):
    found = sum(len(test.examples) for test in DOCTESTS if test.name.startswith(module + "."))
    found += sum(len(test.examples) for test in DOCTESTS if test.name == module)
    assert found == PROMPTS[module], f"{module}: {PROMPTS[module]} '>>>' prompts, {found} examples collected"


@pytest.mark.parametrize("test", DOCTESTS, ids=lambda test: test.name)
def test_docstring_example(test: doctest.DocTest):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, "".join(report)
