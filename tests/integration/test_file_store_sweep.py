"""What a SIGKILLed writer leaves in a file store (temp files, sidecars whose object never
landed) is swept when the store opens, and never shows in listings."""
import json
import os
import time

import requests

from conftest import run_cli

HOUR = 3600


def plant(path, age_s, text="litter"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def generate(store, job_id, cwd):
    r = run_cli("generate", job_id, "--model", "test", "--job-id", job_id, "--store",
                f"file://{store}", cwd=cwd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["key"]


def test_stale_temp_files_and_orphan_sidecars_are_swept_on_open(tmp_path, serve):
    store = tmp_path / "images"
    kept = generate(store, "kept", tmp_path)
    (store / ".meta" / ".swept").unlink(missing_ok=True)  # as if the last sweep were long ago
    stale = [plant(store / ".tmp-4242-0", 2 * HOUR),
             plant(store / ".meta" / ".tmp-4242-1", 2 * HOUR),
             plant(store / "jobs" / ".tmp-4242-2", 2 * HOUR),
             plant(store / ".meta" / "lost.png.json", 2 * HOUR, '{"content_type":"image/png"}'),
             plant(store / ".meta" / "jobs" / "lost.json.json", 2 * HOUR, "{}")]
    # A live writer's temp file and a sidecar whose object is being written are young: kept.
    young = [plant(store / ".tmp-4242-3", 60),
             plant(store / ".meta" / "landing.png.json", 60, '{"content_type":"image/png"}')]
    bare = plant(store / "bare.png", 2 * HOUR, "no sidecar: kept, never deleted")

    server = serve("--model", "test", "--store", f"file://{store}")
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in young + [bare])
    assert (store / kept).exists() and (store / ".meta" / f"{kept}.json").exists()
    swept = [l for l in server.json_lines() if l.get("msg") == "file store swept"]
    assert swept and swept[0]["temp_files"] == 3 and swept[0]["orphan_sidecars"] == 2, swept
    keys = [i["key"] for i in requests.get(server.url + "/images").json()["images"]]
    assert "lost.png" not in keys and kept in keys
    assert not any(k.startswith(".") or "/." in k for k in keys), keys


def test_the_sweep_runs_at_most_once_per_grace_period(tmp_path):
    store = tmp_path / "images"
    generate(store, "first", tmp_path)
    assert (store / ".meta" / ".swept").exists()
    litter = plant(store / ".tmp-99-0", 2 * HOUR)
    generate(store, "second", tmp_path)  # opened again within the hour: no second walk
    assert litter.exists()
    plant(store / ".meta" / ".swept", 2 * HOUR, "")
    generate(store, "third", tmp_path)
    assert not litter.exists()
