"""The package's version is the binary's, read from its one place: `zarrmountVersion` in
Sources/zarrmount/ZarrMount.swift (spelled as PEP 440 spells it: 0.1.0-dev is 0.1.0.dev0)."""
import os
import re

from setuptools import setup

SWIFT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "zarrmount", "ZarrMount.swift")


def version():
    with open(SWIFT) as f:
        found = re.search(r'^let zarrmountVersion = "([^"]+)"', f.read(), re.M)
    if not found:
        raise SystemExit("%s has no `let zarrmountVersion = \"...\"`" % SWIFT)
    release, _, pre = found.group(1).partition("-")
    return release + ({"dev": ".dev0"}.get(pre, "+" + pre) if pre else "")


setup(version=version())
