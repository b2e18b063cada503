"""The CLI as a subprocess: generate, inspect, errors and exit codes."""
import json
import os
import struct
import subprocess
import zlib

from conftest import binary_path, run_cli


def test_generate_writes_png_with_provenance(tmp_path):
    out = tmp_path / "x.png"
    r = run_cli("generate", "a red circle", "--model", "test", "--seed", "42", "--out", str(out),
                "--store", f"file://{tmp_path}/images", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["seed"] == 42
    assert result["model"] == "test"
    assert result["key"].endswith(".png")
    assert set(result["timings"]) >= {"generate_ms", "encode_ms", "store_ms", "total_ms"}
    assert (tmp_path / "images" / result["key"]).read_bytes() == out.read_bytes()
    info = json.loads(run_cli("inspect", str(out)).stdout)
    assert info["text"]["prompt"] == "a red circle"
    assert info["text"]["seed"] == "42"
    assert info["text"]["model"] == "test"
    assert "Seed: 42" in info["text"]["parameters"]


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    def gen(seed, name):
        path = tmp_path / name
        r = run_cli("generate", "x", "--model", "test", "--seed", str(seed), "--out", str(path),
                    "--store", f"file://{tmp_path}/s", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return path.read_bytes()

    assert gen(1, "a.png") == gen(1, "b.png")
    assert gen(1, "a.png") != gen(2, "c.png")


def test_random_seed_is_reported(tmp_path):
    r = run_cli("generate", "x", "--model", "test", "--store", f"file://{tmp_path}/s", cwd=tmp_path)
    seed = json.loads(r.stdout)["seed"]
    assert 0 <= seed <= 2147483647


def test_job_id_names_the_output_and_rerun_finds_it(tmp_path):
    args = ("generate", "x", "--model", "test", "--job-id", "job-1", "--store", f"file://{tmp_path}/s")
    first = json.loads(run_cli(*args, cwd=tmp_path).stdout)
    second = json.loads(run_cli(*args, cwd=tmp_path).stdout)
    assert first["key"] == second["key"] == "job-1.png"
    assert second["reused"] is True
    assert second["seed"] == first["seed"]
    assert len(list((tmp_path / "s").glob("*.png"))) == 1


def one_line_error(r):
    assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    for args in (["generate"], ["generate", "x", "--seed", "-5"], ["generate", "x", "--bogus"],
                 ["nosuchcommand"], ["serve", "--port", "70000"]):
        r = run_cli(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        one_line_error(r)


def test_validation_errors_exit_2_naming_the_field(tmp_path):
    r = run_cli("generate", "   ", "--model", "test", cwd=tmp_path)
    assert r.returncode == 2
    assert "prompt" in one_line_error(r)
    r = run_cli("generate", "x", "--model", "test", "--size", "100x100", cwd=tmp_path)
    assert r.returncode == 2
    assert "64x64" in one_line_error(r)
    r = run_cli("generate", "x", "--model", "nosuch", cwd=tmp_path)
    assert r.returncode == 2
    assert "unknown model" in one_line_error(r)


def test_upstream_failure_exit_code(tmp_path):
    r = run_cli("generate", "x", "--model", "test?fail=upstream_timeout", cwd=tmp_path)
    assert r.returncode == 5
    assert "upstream_timeout" in one_line_error(r)


def test_inspect_rejects_non_png(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    r = run_cli("inspect", str(bad))
    assert r.returncode == 2
    one_line_error(r)


def png_chunk(kind, data, declared_length=None):
    length = len(data) if declared_length is None else declared_length
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", length) + kind + data + struct.pack(">I", crc)


def test_inspect_refuses_a_chunk_longer_than_the_file_without_allocating_it(tmp_path):
    # A 90-byte file whose tEXt chunk declares 2 GiB: libpng would allocate the declared length.
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    crafted = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
               + png_chunk(b"tEXt", b"prompt\0x" * 4, declared_length=0x7FFFFFF0)
               + png_chunk(b"IEND", b""))
    bad = tmp_path / "huge-text.png"
    bad.write_bytes(crafted)
    proc = subprocess.Popen([binary_path(), "inspect", str(bad)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read()
    assert os.waitstatus_to_exitcode(status) == 2, stderr
    assert stderr.count("\n") == 1 and "declares" in stderr, stderr
    assert usage.ru_maxrss < 64 * 1024, f"peak RSS {usage.ru_maxrss} KiB"  # KiB on Linux


def test_every_subcommand_has_help():
    r = run_cli("--help")
    assert r.returncode == 0
    for command in ("generate", "serve", "inspect"):
        assert command in r.stdout
        h = run_cli(command, "--help")
        assert h.returncode == 0 and "Usage" in h.stdout, command
