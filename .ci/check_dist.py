"""Checks an sdist and its wheel (.ci/sdist_check.sh): contents, metadata, a stripped library.

    python .ci/check_dist.py SDIST WHEEL TRACKED   # TRACKED: `git ls-files` output, one a line

Run by the interpreter whose torch built the wheel. Exits non-zero with every problem listed.
"""
import email.parser
import fnmatch
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import torch

# What setuptools adds to every sdist: none of it is in git.
SDIST_GENERATED = ["PKG-INFO", "setup.cfg", "rnnfast.egg-info/*"]
# Shipped in the wheel beyond the package's tracked .py files: the build's outputs.
WHEEL_BUILT = ["rnnfast/_C.*.so", "rnnfast/_build_info.py"]


def metadata(text):
    return email.parser.Parser().parsestr(text)


def expect(problems, ok, message):
    if not ok:
        problems.append(message)


def check_metadata(problems, where, meta, torch_requirement):
    requires = meta.get_all("Requires-Dist") or []
    expect(problems, torch_requirement in requires,
           f"{where}: Requires-Dist should hold {torch_requirement!r}, has {requires}")
    for field, want in (("License", "BSD-3-Clause"), ("Author", "rnnfast developers"),
                        ("Description-Content-Type", "text/markdown")):
        expect(problems, meta.get(field) == want,
               f"{where}: {field} should be {want!r}, is {meta.get(field)!r}")
    expect(problems, "## Install" in meta.get_payload(),
           f"{where}: the long description is not the README")
    expect(problems, bool(meta.get_all("Classifier")), f"{where}: no classifiers")


def check_sdist(problems, path, tracked):
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        names = {m.name.split("/", 1)[1] for m in members}
        top = {m.name.split("/", 1)[0] for m in members}
        pkg_info = tar.extractfile(f"{top.pop()}/PKG-INFO").read().decode()
    missing = sorted(tracked - names)
    extra = sorted(n for n in names - tracked
                   if not any(fnmatch.fnmatch(n, g) for g in SDIST_GENERATED))
    expect(problems, not missing, f"sdist: tracked files missing (add them to MANIFEST.in): {missing}")
    expect(problems, not extra, f"sdist: files git does not track (exclude them in MANIFEST.in): {extra}")
    check_metadata(problems, "sdist PKG-INFO", metadata(pkg_info), "torch>=2.11")


def check_wheel(problems, path, tracked):
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = metadata(whl.read(f"{dist_info}/METADATA").decode())
        package = {n for n in names if not n.startswith(dist_info)}
        want = {n for n in tracked if n.startswith("rnnfast/") and n.endswith(".py")}
        built = {n for n in package if any(fnmatch.fnmatch(n, g) for g in WHEEL_BUILT)}
        expect(problems, len(built) == len(WHEEL_BUILT),
               f"wheel: should hold {WHEEL_BUILT}, holds {sorted(built)}")
        expect(problems, package == want | built,
               f"wheel: package files differ from the tracked ones: missing "
               f"{sorted(want - package)}, extra {sorted(package - want - built)}")
        expect(problems, f"{dist_info}/licenses/LICENSE" in names, "wheel: no LICENSE")
        check_metadata(problems, "wheel METADATA", meta, f"torch=={major}.{minor}.*")
        for name in sorted(n for n in built if n.endswith(".so")):
            with tempfile.TemporaryDirectory() as tmp:
                so = whl.extract(name, tmp)
                size_kib = os.path.getsize(so) // 1024
                sections = subprocess.run(["readelf", "-SW", so], capture_output=True, text=True,
                                          check=True).stdout
            debug = sorted({w for w in sections.split() if w.startswith((".debug", ".symtab"))})
            expect(problems, not debug, f"wheel: {name} is not stripped: it has {debug}")
            if not debug:
                print(f"check_dist: {name} is stripped ({size_kib} KiB)")


def main(sdist, wheel, tracked_list):
    with open(tracked_list) as f:
        tracked = {line.strip() for line in f if line.strip()}
    problems = []
    check_sdist(problems, sdist, tracked)
    check_wheel(problems, wheel, tracked)
    for p in problems:
        print(f"check_dist: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check_dist: ok: the sdist holds the {len(tracked)} tracked files and nothing else; "
          "metadata, requirements and the stripped library are right")


if __name__ == "__main__":
    main(*sys.argv[1:])
