#!/usr/bin/env python3
"""The shared libraries a binary needs (its ELF NEEDED entries, from readelf), each with the
Debian package that provides it on this machine (dpkg -S), as JSON for the wheel:
[{"soname": "libfuse3.so.3", "package": "libfuse3-3"}, ...], or with --depends as a Debian
Depends field for the .deb. The C library's own parts (libc,
libm, the loader) are left out: every system that runs the binary has them."""
import json
import re
import subprocess
import sys

ALWAYS_PRESENT = re.compile(r"^(libc|libm|libdl|libpthread|librt|libutil|ld-linux[-\w]*)\.so")


def needed(binary):
    dynamic = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)


def resolved_paths():
    """soname -> path, from the loader's cache."""
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths = {}
    for soname, path in re.findall(r"^\s*(\S+) \(libc6,x86-64[^)]*\) => (\S+)$", cache, re.M):
        paths.setdefault(soname, path)
    return paths


def package_of(path):
    found = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if found.returncode != 0:
        # /lib is a link to /usr/lib on merged-/usr systems; dpkg may know the other spelling.
        other = path[4:] if path.startswith("/usr/") else "/usr" + path
        found = subprocess.run(["dpkg", "-S", other], capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit("no Debian package holds %s (dpkg -S): install the library from a package first" % path)
    return found.stdout.split(":")[0].strip()


def main():
    arguments = sys.argv[1:]
    depends = arguments[:1] == ["--depends"]
    if depends:
        arguments = arguments[1:]
    if len(arguments) != 1:
        raise SystemExit("usage: package-libraries.py [--depends] BINARY")
    paths = resolved_paths()
    libraries = []
    for soname in needed(arguments[0]):
        if ALWAYS_PRESENT.match(soname):
            continue
        if soname not in paths:
            raise SystemExit("%s needs %s, which the loader's cache does not hold (ldconfig -p)" % (arguments[0], soname))
        libraries.append({"soname": soname, "package": package_of(paths[soname])})
    if depends:
        # A Debian Depends field: each package once, in the binary's order.
        print(", ".join(dict.fromkeys(entry["package"] for entry in libraries)))
        return
    json.dump(libraries, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
