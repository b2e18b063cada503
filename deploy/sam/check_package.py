#!/usr/bin/env python3
"""Refuses a Lambda package that provided.al2023 could not start.

    check_package.py DIR --arch arm64|x86_64 [--max-glibc 2.34] [--max-unzipped-mb 250]

DIR holds `bootstrap` and optionally `lib/*.so*`. Every ELF file there must be 64-bit
little-endian for the function's architecture (an x86-64 bootstrap on an arm64 function fails
every invoke with an exec format error, and SAM does not check), use the architecture's standard
program interpreter, need no glibc symbol version newer than --max-glibc, and need only shared
libraries that the runtime has (glibc's own) or that the package carries in lib/. Reads the ELF
files itself (no binutils), so it checks any architecture on any build host.
Exit 0 with one summary line; exit 1 with one line per problem.
"""
import argparse
import pathlib
import re
import struct
import sys

MACHINES = {"x86_64": 62, "arm64": 183}  # EM_X86_64, EM_AARCH64
INTERPRETERS = {"x86_64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}
# Shared objects of glibc itself, which the runtime provides (and which must not be bundled).
SYSTEM_LIBS = re.compile(r"^(libc|libm|libpthread|libdl|librt|libresolv|libutil|libanl|libmvec|"
                         r"ld-linux-x86-64|ld-linux-aarch64)\.so\.[0-9]+$")
DT_NEEDED, DT_STRTAB, DT_STRSZ = 1, 5, 10
SHT_DYNAMIC, SHT_GNU_VERNEED = 6, 0x6FFFFFFE
PT_INTERP = 3


class ElfInfo:
    def __init__(self, machine, interpreter, needed, versions):
        self.machine = machine
        self.interpreter = interpreter
        self.needed = needed
        self.versions = versions  # e.g. {"GLIBC_2.17", "GLIBCXX_3.4"}


def read_elf(data):
    """ElfInfo of a 64-bit little-endian ELF file, or a string saying why it is not one."""
    if data[:4] != b"\x7fELF":
        return "not an ELF file"
    if data[4] != 2 or data[5] != 1:
        return "not a 64-bit little-endian ELF file"
    (machine,) = struct.unpack_from("<H", data, 18)
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
    interpreter = None
    for i in range(phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == PT_INTERP:
            interpreter = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    sections = []
    for i in range(shnum):
        (_name, sh_type, _flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, _align,
         _entsize) = struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
        sections.append((sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info))
    needed, versions = [], set()

    def string_at(section_index, offset):
        base = sections[section_index][2] + offset
        return data[base:data.index(b"\0", base)].decode()

    for sh_type, _addr, offset, size, link, info in sections:
        if sh_type == SHT_DYNAMIC:
            for pos in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", data, pos)
                if tag == DT_NEEDED:
                    needed.append(string_at(link, value))
        elif sh_type == SHT_GNU_VERNEED:
            pos = offset
            for _ in range(info):
                _version, count, _file, aux, next_entry = struct.unpack_from("<HHIII", data, pos)
                aux_pos = pos + aux
                for _ in range(count):
                    _hash, _flags, _other, name, aux_next = struct.unpack_from(
                        "<IHHII", data, aux_pos)
                    versions.add(string_at(link, name))
                    aux_pos += aux_next
                pos += next_entry
    return ElfInfo(machine, interpreter, needed, versions)


def version_tuple(text):
    return tuple(int(part) for part in text.split("."))


def newest_glibc(versions):
    found = [version_tuple(v[len("GLIBC_"):]) for v in versions
             if re.fullmatch(r"GLIBC_[0-9]+(\.[0-9]+)*", v)]
    return max(found) if found else None


def check(directory, arch, max_glibc, max_unzipped_mb):
    problems = []
    bootstrap = directory / "bootstrap"
    if not bootstrap.is_file():
        return [f"{bootstrap}: missing (Lambda runs bootstrap)"], None
    if not bootstrap.stat().st_mode & 0o111:
        problems.append(f"{bootstrap}: not executable")
    bundled = {p.name for p in (directory / "lib").glob("*.so*")} if (directory / "lib").is_dir() \
        else set()
    limit = version_tuple(max_glibc)
    newest_seen = None
    files = [bootstrap] + sorted((directory / "lib").glob("*.so*")) if bundled else [bootstrap]
    for path in files:
        info = read_elf(path.read_bytes())
        if isinstance(info, str):
            problems.append(f"{path.name}: {info}")
            continue
        if info.machine != MACHINES[arch]:
            actual = {v: k for k, v in MACHINES.items()}.get(info.machine, f"e_machine {info.machine}")
            problems.append(f"{path.name}: built for {actual}, but the function's architecture is "
                            f"{arch} (every invoke would fail with an exec format error)")
        if path == bootstrap and info.interpreter not in (None, INTERPRETERS[arch]):
            problems.append(f"bootstrap: program interpreter {info.interpreter}, "
                            f"expected {INTERPRETERS[arch]}")
        glibc = newest_glibc(info.versions)
        if glibc and glibc > limit:
            problems.append(f"{path.name}: needs GLIBC_{'.'.join(map(str, glibc))}, but "
                            f"provided.al2023 has glibc {max_glibc}")
        if glibc and (newest_seen is None or glibc > newest_seen):
            newest_seen = glibc
        for lib in info.needed:
            if not SYSTEM_LIBS.match(lib) and lib not in bundled:
                problems.append(f"{path.name}: needs {lib}, which neither provided.al2023 "
                                f"(glibc only) nor the package's lib/ has")
    size_mb = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20
    if size_mb > max_unzipped_mb:
        problems.append(f"{size_mb:.1f} MB unzipped exceeds Lambda's {max_unzipped_mb} MB limit")
    summary = (f"{arch}, {len(bundled)} bundled libraries, {size_mb:.1f} MB unzipped, needs glibc "
               f"{'.'.join(map(str, newest_seen)) if newest_seen else 'none'} (limit {max_glibc})")
    return problems, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=pathlib.Path)
    parser.add_argument("--arch", choices=sorted(MACHINES), required=True)
    parser.add_argument("--max-glibc", default="2.34")
    parser.add_argument("--max-unzipped-mb", type=float, default=250)
    args = parser.parse_args()
    problems, summary = check(args.directory, args.arch, args.max_glibc, args.max_unzipped_mb)
    for problem in problems:
        print(f"check_package: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_package: ok: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
