"""Write docs/api.md: the public API of each brainsim subpackage, from the docstrings.

    python docs/make_api.py            # rewrite docs/api.md
    python docs/make_api.py --check    # exit 1 if docs/api.md is out of date

For every module below: its docstring's first paragraph, then each public name
(``__all__``, else the functions and classes defined in the module without a
leading underscore) with its signature and the summary of its docstring (up to
the first numpydoc section); classes also list their public methods and
properties. The full docstrings are one ``help(...)`` away.
"""
import argparse
import importlib
import inspect
import pathlib
import re
import sys

MODULES = [
    ("brainsim", "Network, Simulation, stores and errors"),
    ("brainsim.datasets", "Connectomes and BOLD data"),
    ("brainsim.generation", "Network generation"),
    ("brainsim.generation.multi_area_spec", "Multi-area specifications"),
    ("brainsim.generation.potjans_diesmann", "The Potjans-Diesmann microcircuit"),
    ("brainsim.generation.mean_field_model", "Population models for the mean field"),
    ("brainsim.analysis", "Analysis of results"),
    ("brainsim.analysis.meanfield", "Mean-field rates"),
    ("brainsim.plotting", "Figures"),
    ("brainsim.assimilation", "BOLD and assimilation"),
    ("brainsim.explore", "Exploration and fitting on Dask"),
    ("brainsim.wholebrain", "The whole-brain objective (FC, FCD)"),
    ("brainsim.synapses", "Synapse storage"),
    ("brainsim.validation", "Validators shared by the API"),
    ("brainsim.ensemble", "Ensembles of networks"),
    ("brainsim.backends.dask", "The Dask backend"),
    ("brainsim.demo", "The demo"),
    ("brainsim.cli", "The command line"),
]
SECTION = re.compile(r"^\s*(Parameters|Returns|Yields|Raises|Attributes|Notes|Examples|"
                     r"References|See Also|Warns)\s*$")
OUT = pathlib.Path(__file__).resolve().parent / "api.md"


def summary(obj):
    """Docstring up to its first numpydoc section (code blocks kept)."""
    doc = inspect.getdoc(obj) or ""
    lines = []
    for line in doc.splitlines():
        if SECTION.match(line):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def first_paragraph(obj):
    """The docstring's first paragraph on one line."""
    return " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())


def signature(name, obj):
    try:
        sig = inspect.signature(obj)
        if inspect.isclass(obj) and str(sig) == "(*args, **kwargs)":  # a __new__ dispatcher
            params = list(inspect.signature(obj.__init__).parameters.values())[1:]
            sig = sig.replace(parameters=params)
        return f"{name}{sig}"
    except (TypeError, ValueError):
        return name


def public_names(module):
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [n for n, v in vars(module).items()
            if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
            and getattr(v, "__module__", None) == module.__name__]


def members(cls):
    """Public methods and properties defined on the class itself."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            out.append((name, "property", first_paragraph(value)))
        elif inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod)):
            func = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            out.append((signature(name, func), "method", first_paragraph(func)))
    return out


def quote(text):
    """A docstring summary as Markdown: indented blocks stay code."""
    return text.replace("\n", "  \n") if "    " not in text else "```\n" + text + "\n```"


def describe(qualname, obj):
    kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else "data"
    lines = [f"### `{qualname}`", ""]
    if kind == "data":
        text = repr(obj)
        lines += [f"`{text if len(text) < 100 else text[:97] + '...'}`", ""]
        return lines
    lines += ["```python", signature(qualname, obj), "```", ""]
    text = summary(obj)
    if text:
        lines += [quote(text), ""]
    if kind == "class":
        for sig, what, doc in members(obj):
            lines.append(f"- `{sig}` ({what})" + (f": {doc}" if doc else ""))
        lines.append("")
    return lines


def render():
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/make_api.py` (do not edit by hand);",
             "signatures and summaries only: `help(name)` gives the full docstring, with",
             "parameters, units and references. Units are NEST's (ms, mV, pA, pF, nS, Hz;",
             "BOLD time in s).", ""]
    lines += [f"- [`{name}`](#{name.replace('.', '')}): {title}" for name, title in MODULES]
    lines.append("")
    for name, title in MODULES:
        module = importlib.import_module(name)
        lines += [f"## {name}", "", f"*{title}.* " + first_paragraph(module).replace("\n", " "),
                  ""]
        for attr in public_names(module):
            lines += describe(f"{name}.{attr}", getattr(module, attr))
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/api.md differs from what would be written")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python docs/make_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
