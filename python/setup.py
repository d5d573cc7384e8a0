"""The package's version is the binary's, read from its one place: `zarrmountVersion` in
Sources/zarrmount/ZarrMount.swift (spelled as PEP 440 spells it: 0.1.0-dev is 0.1.0.dev0)."""
import os
import re

from setuptools import Distribution, setup

SWIFT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "zarrmount", "ZarrMount.swift")


def version():
    with open(SWIFT) as f:
        found = re.search(r'^let zarrmountVersion = "([^"]+)"', f.read(), re.M)
    if not found:
        raise SystemExit("%s has no `let zarrmountVersion = \"...\"`" % SWIFT)
    release, _, pre = found.group(1).partition("-")
    return release + ({"dev": ".dev0"}.get(pre, "+" + pre) if pre else "")


# tools/package wheel puts a built binary in zarrmount/bin: the wheel then carries it and is
# tagged for this platform (any Python 3, no Python ABI: the binary is a separate program).
cmdclass = {}
package_data = {}
distclass = Distribution
if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "zarrmount", "bin", "zarrmount")):
    try:
        from setuptools.command.bdist_wheel import bdist_wheel
    except ImportError:  # setuptools before 70.1 has it in the wheel package
        from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):
        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            return ("py3", "none") + super().get_tag()[2:]

    class BinaryDistribution(Distribution):
        """Installed where platform-specific files go (platlib), at the wheel's root."""

        def has_ext_modules(self):
            return True

    cmdclass["bdist_wheel"] = PlatformWheel
    package_data["zarrmount"] = ["bin/zarrmount", "libraries.json"]
    distclass = BinaryDistribution

setup(version=version(), cmdclass=cmdclass, package_data=package_data, distclass=distclass)
