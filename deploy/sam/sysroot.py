#!/usr/bin/env python3
"""Builds the sysroot the Lambda bootstrap is compiled against, from Debian's package archive.

    sysroot.py --arch arm64|x86_64 --out DIR [--mirror URL]

Why: provided.al2023 has glibc 2.34. A binary built against the build host's glibc (Debian 12:
2.36) asks for symbols AL2023 lacks. So the bootstrap is compiled against an older C library
than it runs on, and every other library is linked in statically:

  * glibc, libgcc and libstdc++ (static) of Debian 11 "bullseye" (glibc 2.31, GCC 10): what the
    binary needs from the system is then at most glibc 2.31, which AL2023 (2.34) provides;
  * static OpenSSL, zlib, SQLite, libpng, libjpeg-turbo and libwebp, and the header-only JSON,
    CLI11 and Boost (Asio, Beast) libraries, of Debian 12 "bookworm" (maintained,
    security-patched versions);
  * libcurl built from bookworm's source package, with Debian's patches applied (Debian's
    libcurl.a needs Kerberos, which has no static library).

Only Python's standard library, `patch` and a C compiler are needed, so the same script runs on a
Debian/Ubuntu laptop, in CI and inside AWS's AL2023 build image, for either architecture (no
dpkg, no root, no chroot: the .deb files are unpacked directly). Downloads are checked against
the SHA-256 sums of the archive's indices; each index is checked against the suite's InRelease
file, whose signature is verified with gpgv when Debian's keyring is installed.
"""
import argparse
import gzip
import hashlib
import io
import lzma
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request

ARCHES = {"x86_64": ("amd64", "x86_64-linux-gnu"), "arm64": ("arm64", "aarch64-linux-gnu")}
DEBIAN_ARCH_TO_LAMBDA = {"amd64": "x86_64", "arm64": "arm64"}

# (suite, component-index base, packages). The C library and the compiler runtime come from
# bullseye so the binary needs no glibc newer than 2.31.
BULLSEYE = ["libc6", "libc6-dev", "linux-libc-dev", "libgcc-10-dev", "libstdc++-10-dev",
            "libgcc-s1", "libcrypt1", "libcrypt-dev"]
# Static libraries and headers from bookworm: security-maintained versions.
BOOKWORM = ["libssl-dev", "zlib1g-dev", "libsqlite3-dev", "libpng-dev", "libjpeg62-turbo-dev",
            "libwebp-dev", "nlohmann-json3-dev", "libcli11-dev",
            "libboost1.81-dev"]  # Boost: header-only Asio and Beast
SOURCES = ["curl"]
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
STAMP = "imagegen-sysroot.stamp"
STAMP_VERSION = "4"  # bump when the contents change


def log(message):
    print(f"sysroot: {message}", file=sys.stderr, flush=True)


class DownloadError(Exception):
    pass


def fetch(url, attempts=4):
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            if error.code == 404:  # not on this mirror: no point in retrying
                raise DownloadError(f"cannot download {url}: {error}")
            last = error
        except OSError as error:  # URLError is an OSError
            last = error
        if attempt < attempts - 1:
            log(f"retrying {url} ({last})")
    raise DownloadError(f"cannot download {url}: {last}")


class Suite:
    """One suite of one archive: its InRelease, checked, and the indices it lists."""

    def __init__(self, mirror, suite):
        self.base = f"{mirror}/dists/{suite}"
        self.mirror = mirror
        self.suite = suite
        try:
            self.release = fetch(f"{self.base}/InRelease")
        except DownloadError as error:
            raise SystemExit(f"sysroot: {error}")
        self._verify_signature()
        self.sums = {}
        in_sha256 = False
        for line in self.release.decode("utf-8", "replace").splitlines():
            if line.startswith("SHA256:"):
                in_sha256 = True
                continue
            if in_sha256 and line.startswith(" "):
                digest, _size, name = line.split()
                self.sums[name] = digest
            elif in_sha256:
                in_sha256 = False

    def _verify_signature(self):
        if not (shutil.which("gpgv") and os.path.exists(KEYRING)):
            log(f"{self.suite}: gpgv or {KEYRING} missing; InRelease signature not checked")
            return
        with tempfile.NamedTemporaryFile() as release:
            release.write(self.release)
            release.flush()
            result = subprocess.run(["gpgv", "--keyring", KEYRING, release.name],
                                    capture_output=True)
        if result.returncode != 0:
            raise SystemExit(f"sysroot: bad signature on {self.base}/InRelease")

    def index(self, name):
        """Parsed Packages or Sources index (`main/binary-arm64/Packages`): {package: fields}."""
        try:
            data = fetch(f"{self.base}/{name}.xz")
        except DownloadError as error:
            raise SystemExit(f"sysroot: {error}")
        if hashlib.sha256(data).hexdigest() != self.sums.get(f"{name}.xz"):
            raise SystemExit(f"sysroot: {self.base}/{name}.xz does not match InRelease")
        return parse_index(lzma.decompress(data).decode("utf-8", "replace"))


def parse_index(text):
    entries = {}
    for stanza in text.split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            entries[fields["Package"]] = fields  # later stanzas (newer versions) win
    return entries


def _order(char):
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a, b):
    """dpkg's comparison of one upstream or revision part."""
    while a or b:
        a_text, a = re.match(r"([^0-9]*)(.*)", a).groups()
        b_text, b = re.match(r"([^0-9]*)(.*)", b).groups()
        for x, y in zip(a_text + "\0" * len(b_text), b_text + "\0" * len(a_text)):
            ox = 0 if x == "\0" else _order(x)
            oy = 0 if y == "\0" else _order(y)
            if ox != oy:
                return -1 if ox < oy else 1
        a_num, a = re.match(r"([0-9]*)(.*)", a).groups()
        b_num, b = re.match(r"([0-9]*)(.*)", b).groups()
        if int(a_num or 0) != int(b_num or 0):
            return -1 if int(a_num or 0) < int(b_num or 0) else 1
    return 0


def version_key(version):
    """A sort key ordering Debian versions as dpkg does (epoch, upstream, revision)."""
    epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")

    class Key:
        def __init__(self, parts):
            self.parts = parts

        def __lt__(self, other):
            if int(self.parts[0]) != int(other.parts[0]):
                return int(self.parts[0]) < int(other.parts[0])
            for mine, theirs in zip(self.parts[1:], other.parts[1:]):
                result = _compare_part(mine, theirs)
                if result:
                    return result < 0
            return False

    return Key((epoch or "0", upstream, revision))


def candidates(indices, package):
    """[(entry, archive base)] of `package` over [(index, base), ...], newest version first."""
    found = [(index[package], base) for index, base in indices if package in index]
    if not found:
        raise SystemExit(f"sysroot: package {package} not found")
    return sorted(found, key=lambda item: version_key(item[0]["Version"]), reverse=True)


def first_available(indices, package, download):
    """download(entry, base) for the newest version a mirror really serves (a partial mirror may
    list a security update whose file it lacks)."""
    errors = []
    for entry, base in candidates(indices, package):
        try:
            return entry, download(entry, base)
        except DownloadError as error:
            errors.append(str(error))
    raise SystemExit("sysroot: " + "; ".join(errors))


def download_checked(url, sha256):
    data = fetch(url)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SystemExit(f"sysroot: checksum mismatch for {url}")
    return data


def unpack_deb(data, root):
    """Extracts a .deb's data.tar.* into root (a .deb is an ar archive)."""
    if not data.startswith(b"!<arch>\n"):
        raise SystemExit("sysroot: not a .deb")
    offset = 8
    while offset < len(data):
        header = data[offset:offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = data[offset + 60:offset + 60 + size]
        offset += 60 + size + (size & 1)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                extract(tar, root)
            return
    raise SystemExit("sysroot: .deb without data.tar")


def install_binaries(mirror, security_mirror, root, debian_arch):
    plan = [("bullseye", BULLSEYE), ("bookworm", BOOKWORM)]
    packages_index = f"main/binary-{debian_arch}/Packages"
    for suite, packages in plan:
        indices = [(Suite(security_mirror, f"{suite}-security").index(packages_index),
                    security_mirror),
                   (Suite(mirror, f"{suite}-updates").index(packages_index), mirror),
                   (Suite(mirror, suite).index(packages_index), mirror)]
        for package in packages:
            entry, data = first_available(
                indices, package,
                lambda e, base: download_checked(f"{base}/{e['Filename']}", e["SHA256"]))
            log(f"{suite}: {package} {entry['Version']}")
            unpack_deb(data, root)


def source_files(entry):
    """(name, sha256) of a Sources stanza's files."""
    files = []
    for line in entry.get("Checksums-Sha256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            files.append((parts[2], parts[0]))
    return files


def fetch_sources(mirror, security_mirror, work):
    indices = [(Suite(security_mirror, "bookworm-security").index("main/source/Sources"),
                security_mirror),
               (Suite(mirror, "bookworm").index("main/source/Sources"), mirror)]
    trees = {}
    for package in SOURCES:
        entry, files = first_available(indices, package,
                                       lambda e, base: download_source(e, base, mirror))
        log(f"bookworm source: {package} {entry['Version']}")
        tree = work / package
        tree.mkdir()
        debian_dir = work / f"{package}-debian"
        debian_dir.mkdir()
        for name, data in files:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                extract(tar, tree if ".orig." in name else debian_dir)
        (source,) = [p for p in tree.iterdir() if p.is_dir()]
        apply_patches(source, debian_dir / "debian")
        trees[package] = source
    return trees


def download_source(entry, base, mirror):
    files = []
    for name, sha256 in source_files(entry):
        if name.endswith((".dsc", ".asc")):
            continue
        # A security upload keeps its .orig tarball in the main archive's pool.
        url = f"{base}/{entry['Directory']}/{name}"
        if ".orig." in name and base != mirror:
            url = f"{mirror}/{entry['Directory']}/{name}"
        files.append((name, download_checked(url, sha256)))
    return files


def extract(tar, root):
    if hasattr(tarfile, "data_filter"):
        tar.extractall(root, filter="tar")
    else:
        tar.extractall(root)


def apply_patches(source, debian_dir):
    series = debian_dir / "patches" / "series"
    if not series.exists():
        return
    for line in series.read_text().splitlines():
        name = line.split("#")[0].strip()
        if not name:
            continue
        patch = debian_dir / "patches" / name.split()[0]
        subprocess.run(["patch", "-p1", "-s", "-N", "-i", str(patch)], cwd=source, check=True)


def build_curl(source, root, triple, cc):
    """A static libcurl with HTTP(S) over OpenSSL only: the AWS layer needs nothing else."""
    flags = f"--target={triple} --sysroot={root}" if "clang" in cc else f"--sysroot={root}"
    prefix = root / "usr"
    env = dict(os.environ, CC=cc, CFLAGS=f"{flags} -O2 -fPIC",
               LDFLAGS=f"{flags} -fuse-ld=lld" if "clang" in cc else flags,
               PKG_CONFIG_LIBDIR=f"{prefix}/lib/{triple}/pkgconfig:{prefix}/share/pkgconfig",
               PKG_CONFIG_SYSROOT_DIR=str(root))
    host = "aarch64-linux-gnu" if triple.startswith("aarch64") else "x86_64-linux-gnu"
    disabled = ["shared", "ldap", "ldaps", "rtsp", "dict", "telnet", "tftp", "pop3", "imap",
                "smtp", "gopher", "mqtt", "ftp", "file", "smb", "manual", "ntlm",
                "ntlm-wb", "alt-svc", "hsts", "unix-sockets", "cookies"]
    configure = ["./configure", f"--host={host}", f"--prefix={prefix}",
                 f"--libdir={prefix}/lib/{triple}", "--enable-static",
                 f"--with-openssl={prefix}", f"--with-zlib={prefix}", "--without-libpsl",
                 "--without-brotli", "--without-zstd", "--without-nghttp2", "--without-libidn2",
                 "--without-librtmp", "--without-libssh2", "--without-gssapi",
                 "--with-ca-fallback", "--without-ca-bundle", "--without-ca-path"]
    configure += [f"--disable-{feature}" for feature in disabled]
    if not (source / "configure").exists():
        subprocess.run(["autoreconf", "-fi"], cwd=source, check=True, env=env)
    log("building libcurl (static, HTTP/HTTPS only)")
    subprocess.run(configure, cwd=source, check=True, env=env, stdout=subprocess.DEVNULL)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["make", "-s", "-j", jobs, "-C", "lib"], cwd=source, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["make", "-s", "-C", "lib", "install"], cwd=source, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["make", "-s", "-C", "include", "install"], cwd=source, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["make", "-s", "install-pkgconfigDATA"], cwd=source, check=True, env=env,
                   stdout=subprocess.DEVNULL)


def relativize_links(root):
    """Debian's packages hold absolute symlinks (/lib64/ld-linux-x86-64.so.2 -> /lib/...); inside
    a sysroot they must point into the sysroot, not at the build host's files."""
    for path in root.rglob("*"):
        if path.is_symlink() and os.readlink(path).startswith("/"):
            target = root / os.readlink(path).lstrip("/")
            path.unlink()
            path.symlink_to(os.path.relpath(target, path.parent))


def keep_static_only(root, triple):
    """Removes shared-object links of the bookworm libraries so the linker takes the .a files."""
    libdir = root / "usr" / "lib" / triple
    for name in ["libssl.so", "libcrypto.so", "libz.so", "libsqlite3.so", "libpng.so",
                 "libpng16.so", "libjpeg.so", "libwebp.so", "libwebpmux.so", "libwebpdemux.so"]:
        (libdir / name).unlink(missing_ok=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHES), required=True)
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--mirror", default=os.environ.get("DEBIAN_MIRROR",
                                                          "http://deb.debian.org/debian"))
    parser.add_argument("--security-mirror", default=os.environ.get(
        "DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security"))
    parser.add_argument("--cc", default=os.environ.get("SYSROOT_CC", "clang"))
    args = parser.parse_args()
    debian_arch, triple = ARCHES[args.arch]
    root = args.out.resolve()
    stamp = root / STAMP
    if stamp.exists() and stamp.read_text().strip() == STAMP_VERSION:
        return
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    install_binaries(args.mirror.rstrip("/"), args.security_mirror.rstrip("/"), root,
                     debian_arch)
    relativize_links(root)
    keep_static_only(root, triple)
    with tempfile.TemporaryDirectory() as work:
        trees = fetch_sources(args.mirror.rstrip("/"), args.security_mirror.rstrip("/"),
                              pathlib.Path(work))
        build_curl(trees["curl"], root, triple, args.cc)
    stamp.write_text(STAMP_VERSION + "\n")
    log(f"ready: {root}")


if __name__ == "__main__":
    main()
