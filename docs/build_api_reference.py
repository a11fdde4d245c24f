"""Build the HTML API reference of the four packages from their docstrings, with pdoc; any warning fails it.

    python docs/build_api_reference.py [OUTPUT_DIRECTORY]      (``make docs``; default ``docs/api``)

Every public module is rendered (pdoc alone would show only the submodules a package's ``__all__`` names), with
Google-style sections; equations are written in Unicode in the docstrings, so the pages load nothing from the
network (no MathJax).  The build fails, listing every problem, when

* pdoc warns (an annotation it cannot resolve, a module that does not import, a docstring it cannot convert);
* a docstring names one of our objects in backticks and there is no such object: a broken cross-reference
  (pdoc leaves a name it cannot resolve as plain code, silently).
"""

from __future__ import annotations

import collections
import inspect
import pkgutil
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import pdoc.doc
import pdoc.render

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("reservoir", "readout", "hardware_sim", "experiments")
DEFAULT_OUTPUT = ROOT / "docs" / "api"

# A dotted name alone in a code span that pdoc did not turn into a link (a link would sit inside the span).
UNLINKED_NAME = re.compile(r"<code>([A-Za-z_]\w*(?:\.\w+)+)(?:\(\))?</code>")


def public_modules() -> list[str]:
    """Each package, then its submodules whose dotted path has no part starting with ``_``, alphabetically."""
    modules = []
    for package in PACKAGES:
        modules.append(package)
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                modules.append(info.name)
    return modules


def _namedtuples_resolve_in_their_module(module: pdoc.doc.Module) -> None:
    """Let pdoc resolve the postponed annotations of NamedTuple fields.

    pdoc evaluates a signature's string annotations in the module of the function; a NamedTuple's generated
    ``__new__`` claims a synthetic module (``namedtuple_Name``), so every annotation fails to resolve (an open
    pdoc bug).  Pointing ``__new__`` at the class's own module, for this build only, fixes the lookup.
    """
    for member in module.obj.__dict__.values():
        if isinstance(member, type) and issubclass(member, tuple) and hasattr(member, "_fields"):
            if getattr(member, "__module__", None) == module.modulename:
                member.__new__.__module__ = module.modulename


def broken_references(html: str, classes: Mapping[str, Sequence[type]]) -> list[str]:
    """The dotted names of ours in rendered ``html`` that lead nowhere, in order of appearance.

    A full path (``reservoir.core.run``) is broken when pdoc left it unlinked: no documented object has that
    name.  ``Class.member`` with a public class of ours (``Ridge.fit``; ``classes`` maps a class name to the
    classes of that name) is broken when no such class has that attribute or declared field (pdoc links those
    only inside the class's own module).  Other dotted code (``device.measure``, ``jax.jit``, ``results.csv``)
    names no object of ours and is not checked.
    """
    broken = []
    for name in UNLINKED_NAME.findall(html):
        head, *path = name.split(".")
        if head in PACKAGES or (head in classes and not any(_has_member(cls, path) for cls in classes[head])):
            broken.append(name)
    return broken


def _has_member(cls: type, path: Sequence[str]) -> bool:
    """Whether ``cls.a.b...`` exists, counting fields declared by annotation only (dataclass fields without a
    default, a protocol's attributes)."""
    obj: object = cls
    for part in path:
        if hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            return inspect.isclass(obj) and any(part in vars(k).get("__annotations__", {}) for k in obj.__mro__)
    return True


def _public_classes(modules: Mapping[str, pdoc.doc.Module]) -> dict[str, list[type]]:
    """{class name: the public classes of that name}, over the documented modules."""
    classes = collections.defaultdict(list)
    for module in modules.values():
        for cls in module.classes:
            if cls.modulename == module.modulename and cls.obj not in classes[cls.name]:
                classes[cls.name].append(cls.obj)
    return classes


def build(output: Path) -> list[str]:
    """Render every public module into ``output``; return the problems found (empty when the build is clean).

    Pages of modules that no longer exist are removed.  Warnings are recorded under the interpreter's filters:
    everything pdoc and our modules warn about, not the deprecation notices Python hides by default.
    """
    pdoc.render.configure(docformat="google", search=True, show_source=True)
    problems: list[str] = []
    written = set()
    with warnings.catch_warnings(record=True) as caught:
        modules = {name: pdoc.doc.Module.from_name(name) for name in public_modules()}
        for module in modules.values():
            _namedtuples_resolve_in_their_module(module)
        classes = _public_classes(modules)
        for name, module in modules.items():
            html = pdoc.render.html_module(module, modules)
            problems += [f"{name}: broken cross-reference `{ref}`" for ref in broken_references(html, classes)]
            path = output / f"{name.replace('.', '/')}.html"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(html)
            written.add(path)
        (output / "index.html").write_text(pdoc.render.html_index(modules))
        (output / "search.js").write_text(pdoc.render.search_index(modules))
    for stale in set(output.rglob("*.html")) - written - {output / "index.html"}:
        stale.unlink()
    problems += [f"warning: {warning.message} ({warning.filename}:{warning.lineno})" for warning in caught]
    return problems


def main(argv: Sequence[str]) -> int:
    """Command line: build, print the problems, exit status 1 if there are any."""
    output = Path(argv[0]) if argv else DEFAULT_OUTPUT
    sys.path.insert(0, str(ROOT))  # document this tree, whichever checkout the environment has installed
    problems = build(output)
    for problem in problems:
        print(problem, file=sys.stderr)
    verdict = f"FAILED: {len(problems)} problems above" if problems else "clean"
    print(f"API reference: {output / 'index.html'} ({verdict})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
