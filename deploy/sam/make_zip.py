#!/usr/bin/env python3
"""Zips a Lambda package directory reproducibly: sorted entries, fixed timestamps, and the
permission bits kept (bootstrap must be 0755 inside the zip).   make_zip.py DIR OUT.zip
"""
import os
import pathlib
import sys
import zipfile


def make_zip(directory, out):
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(directory)), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | (path.stat().st_mode & 0o777)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    os.replace(tmp, out)
    print(f"make_zip: {out} ({out.stat().st_size / 2**20:.1f} MB)")


if __name__ == "__main__":
    make_zip(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
