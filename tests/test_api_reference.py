"""The API reference: every public object it documents has a docstring, and its build catches broken references.

The full build (``make docs``, about 15 s) runs in CI after the tests; here only its parts that decide.
"""

import dataclasses
import functools
import importlib.util
import inspect
from pathlib import Path
from typing import NamedTuple

import pytest

from readout import Ridge
from reservoir import DelayParams

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("build_api_reference", ROOT / "docs" / "build_api_reference.py")
api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api)

# Public objects of modules that are being rewritten elsewhere right now; their docstrings come with the rewrite.
# Remove a name from this set as soon as it has one (test_the_known_exceptions_are_still_undocumented says so).
UNDOCUMENTED_FOR_NOW: frozenset[str] = frozenset()

_MEMBER_KINDS = (property, functools.cached_property, staticmethod, classmethod)


def _public_objects() -> dict[str, object]:
    """{dotted name: object} for every public module of the four packages, the functions and classes it defines
    (name not starting with ``_``) or exports in ``__all__``, and the public methods and properties of those
    classes that the class itself defines."""
    objects: dict[str, object] = {}
    for module_name in api.public_modules():
        module = importlib.import_module(module_name)
        objects[module_name] = module
        exported = set(getattr(module, "__all__", ()))
        for name, obj in vars(module).items():
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            defined_here = getattr(obj, "__module__", None) == module_name
            if name in exported or (defined_here and not name.startswith("_")):
                objects[f"{module_name}.{name}"] = obj
            if inspect.isclass(obj) and defined_here and not name.startswith("_"):
                for member_name, member in vars(obj).items():
                    if not member_name.startswith("_") and (
                            inspect.isfunction(member) or isinstance(member, _MEMBER_KINDS)):
                        objects[f"{module_name}.{name}.{member_name}"] = getattr(obj, member_name)
    return objects


def _has_docstring(obj: object) -> bool:
    """A docstring written for it: a class's own (not its base's, nor the ``Name(field, ...)`` line that
    dataclasses and NamedTuples generate); a method's own or that of the method it overrides."""
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__") or ""
        return bool(doc.strip()) and not doc.startswith(f"{obj.__name__}(")
    return bool((inspect.getdoc(obj) or "").strip())


PUBLIC = _public_objects()
UNDOCUMENTED = sorted(name for name, obj in PUBLIC.items() if not _has_docstring(obj))


def test_the_walk_finds_the_public_api():
    for name in ("reservoir.run", "reservoir.core.run", "readout.ridge.Ridge.fit", "hardware_sim.device.Device",
                 "hardware_sim.device.Device.n_units", "experiments.tasks.load_task", "readout.Ridge"):
        assert name in PUBLIC, name
    assert not any(part.startswith("_") for name in PUBLIC for part in name.split(".")), "a private name"
    assert len(PUBLIC) > 500, len(PUBLIC)


def test_every_public_object_has_a_docstring():
    missing = [name for name in UNDOCUMENTED if name not in UNDOCUMENTED_FOR_NOW]
    assert not missing, f"{len(missing)} public objects without a docstring:\n" + "\n".join(missing)


def test_the_known_exceptions_are_still_undocumented():
    stale = sorted(UNDOCUMENTED_FOR_NOW - set(UNDOCUMENTED))
    assert not stale, "documented (or gone) now, remove from UNDOCUMENTED_FOR_NOW: " + ", ".join(stale)


def test_generated_class_docstrings_do_not_count():
    @dataclasses.dataclass
    class Bare:
        x: int

    class Pair(NamedTuple):
        a: int

    class Written(Pair):
        """Says why."""

    assert not _has_docstring(Bare) and not _has_docstring(Pair) and _has_docstring(Written)


CLASSES = {"Ridge": [Ridge], "DelayParams": [DelayParams]}


@pytest.mark.parametrize(("html", "expected"), [
    ('<code><a href="reservoir.html#run">reservoir.run</a></code>', []),    # linked by pdoc
    ("<code>reservoir.runn</code>", ["reservoir.runn"]),                        # a typo: pdoc leaves it as code
    ("<code>readout.ridge.Ridge.fit()</code>", ["readout.ridge.Ridge.fit"]),  # unlinked though it exists
    ("<code>Ridge.fit</code> <code>DelayParams.mask</code>", []),               # members that exist
    ("<code>Ridge.fitt</code> <code>DelayParams.masks</code>", ["Ridge.fitt", "DelayParams.masks"]),
    ("<code>device.measure</code> <code>results.csv</code> <code>jax.jit</code>", []),  # not names of ours
])
def test_broken_references_are_found(html, expected):
    assert api.broken_references(html, CLASSES) == expected
