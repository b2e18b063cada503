"""The web page in headless Chromium: type a prompt, click Generate, see the image in the gallery;
the progress bar fed by the job's event stream, the detail view, reuse of settings, formats,
paging and keyboard submit (tests/e2e/page_features.mjs), at the root and under a stage path."""
import json
import subprocess

import requests

from conftest import ROOT

ARTIFACTS = ROOT / "artifacts"
# The page submits jobs: the server runs them itself.
WORKER = {"IMAGEGEN_SERVE_WORKERS": "1"}


def run_browser(url, screenshot):
    return subprocess.run(["node", str(ROOT / "tests/e2e/gallery.mjs"), url, str(screenshot)],
                          capture_output=True, text=True, timeout=180, cwd=ROOT / "tests/e2e")


def test_generate_from_the_page(serve):
    server = serve("--model", "test", env=WORKER)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-page.png"
    r = run_browser(server.url, shot)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["ok"] and out["figures"] >= 1
    assert shot.stat().st_size > 1000


def test_page_works_with_api_keys(serve):
    """A protected server: the page's key field is sent as a bearer token."""
    server = serve("--model", "test", env=dict(WORKER, IMAGEGEN_API_KEYS="page-key"))
    r = subprocess.run(["node", "-e", f"""
      import('playwright-core').then(async ({{ chromium }}) => {{
        const b = await chromium.launch({{ executablePath: '/usr/bin/chromium',
          args: ['--headless','--no-sandbox','--disable-gpu','--disable-background-networking','--no-first-run'] }});
        const p = await b.newPage();
        await p.goto('{server.url}/');
        await p.fill('#prompt', 'x');
        await p.click('#generate');
        await p.waitForFunction(() => document.querySelector('#status').textContent.includes('unauthorized'));
        await p.evaluate(() => document.querySelector('details').open = true);
        await p.fill('#apikey', 'page-key');
        await p.dispatchEvent('#apikey', 'change');
        await p.click('#generate');
        await p.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Done'), null, {{ timeout: 60000 }});
        await b.close();
      }}).catch((e) => {{ console.error(e); process.exit(1); }});
    """], capture_output=True, text=True, timeout=180, cwd=ROOT / "tests/e2e")
    assert r.returncode == 0, r.stdout + r.stderr


class StageProxy:
    """API Gateway REST in miniature: serves `upstream` under /prod (the stage) and answers 403
    "Missing Authentication Token" for anything outside it, as API Gateway does."""

    def __init__(self, upstream):
        import http.server
        import threading
        import requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                path = self.path
                if not (path == "/prod" or path.startswith("/prod/") or path.startswith("/prod?")):
                    body = b'{"message":"Missing Authentication Token"}'
                    self.send_response(403)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                rest = path[len("/prod"):] or "/"
                if rest.startswith("?"):
                    rest = "/" + rest
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "accept-encoding")}
                headers["Accept-Encoding"] = "identity"  # bodies pass through as they are
                r = requests.request(self.command, upstream + rest, data=data, headers=headers, timeout=120)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_page_works_under_an_api_gateway_stage(serve):
    """Behind API Gateway REST the page is at /prod/ (or /prod): generate, gallery and images
    must all be fetched relative to the stage, never from the host's root."""
    server = serve("--model", "test", env=WORKER)
    proxy = StageProxy(server.url)
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        r = run_browser(proxy.url + "/prod", ARTIFACTS / "web-page-stage.png")  # opens /prod/
        assert r.returncode == 0, r.stdout + r.stderr
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out["ok"] and out["figures"] >= 1
        # /prod without the trailing slash: relative URLs alone would resolve against the root.
        r = subprocess.run(["node", "-e", f"""
          import('playwright-core').then(async ({{ chromium }}) => {{
            const b = await chromium.launch({{ executablePath: '/usr/bin/chromium',
              args: ['--headless','--no-sandbox','--disable-gpu','--disable-background-networking','--no-first-run'] }});
            const p = await b.newPage();
            const outside = [];
            p.on('request', (req) => {{ const u = new URL(req.url()); if (u.protocol.startsWith('http') && !u.pathname.startsWith('/prod')) outside.push(u.pathname); }});
            await p.goto('{proxy.url}/prod');
            await p.fill('#prompt', 'a green triangle');
            await p.click('#generate');
            await p.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Done'), null, {{ timeout: 60000 }});
            await p.waitForFunction(() => {{ const i = document.querySelector('#gallery figure img'); return i && i.complete && i.naturalWidth > 0; }});
            await b.close();
            if (outside.length) {{ console.error('outside the stage: ' + outside.join(', ')); process.exit(1); }}
          }}).catch((e) => {{ console.error(e); process.exit(1); }});
        """], capture_output=True, text=True, timeout=180, cwd=ROOT / "tests/e2e")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        proxy.stop()


def test_generate_directly_without_a_worker(serve):
    """"Run directly": POST /generate, for a server that runs no jobs."""
    server = serve("--model", "test")
    r = subprocess.run(["node", "-e", f"""
      import('playwright-core').then(async ({{ chromium }}) => {{
        const b = await chromium.launch({{ executablePath: '/usr/bin/chromium',
          args: ['--headless','--no-sandbox','--disable-gpu','--disable-background-networking','--no-first-run'] }});
        const p = await b.newPage();
        const posts = [];
        p.on('request', (req) => {{ if (req.method() === 'POST') posts.push(new URL(req.url()).pathname); }});
        await p.goto('{server.url}/');
        await p.evaluate(() => document.querySelector('#options').open = true);
        await p.selectOption('#mode', 'direct');
        await p.fill('#prompt', 'direct');
        await p.click('#generate');
        await p.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Done'), null, {{ timeout: 60000 }});
        await b.close();
        console.log(JSON.stringify(posts));
      }}).catch((e) => {{ console.error(e); process.exit(1); }});
    """], capture_output=True, text=True, timeout=180, cwd=ROOT / "tests/e2e")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == ["/generate"]


def fill_store(serve, store, count):
    """`count` images in `store`, made by a quick server of their own (the page's server is a
    slow one, so that its progress can be watched)."""
    maker = serve("--model", "test", "--store", f"file://{store}")
    for i in range(count):
        r = requests.post(maker.url + "/generate", json={"prompt": f"older {i}", "seed": i, "size": "64x64"})
        assert r.status_code == 200, r.text
    maker.stop()


def run_features(url, prefix):
    r = subprocess.run(["node", str(ROOT / "tests/e2e/page_features.mjs"), url, str(prefix)],
                       capture_output=True, text=True, timeout=240, cwd=ROOT / "tests/e2e")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def check_features(out, prefix):
    assert out["first_page"] == 12  # the page's page size, of 14 stored images
    assert not out["enter_alone_submitted"]  # Enter is a newline in the prompt
    assert out["status"].startswith("Done"), out["status"]
    # Format choice: a JPEG, stored under .jpg and served as image/jpeg.
    assert out["new_key"].endswith(".jpg"), out["new_key"]
    assert out["new_type"] == "image/jpeg" and out["served_type"] == "image/jpeg"
    # The detail view: the image's provenance as stored.
    p = out["provenance"]
    assert p["prompt"] == "a yellow star" and p["seed"] == "7" and p["steps"] == "16"
    assert p["format"] == "jpeg" and p["model"] == "test" and p["key"] == out["new_key"]
    assert p["job"] and p["created"] and p["size"]
    assert out["detail_image_loaded"]
    # Reuse: the form holds the image's settings again.
    width, height = p["size"].split("\u00d7")
    assert out["detail_closed"]
    assert out["form_after_reuse"] == {"prompt": "a yellow star", "seed": "7", "steps": "16",
                                       "format": "jpeg", "size": f"{width}x{height}"}
    # Paging: 12 after a reload, "Load more" brings the other 3 (14 older + the new one).
    assert out["page1"] == 12 and out["more_visible"]
    assert out["after_more"] == 15 and len(set(out["keys"])) == 15
    assert not out["more_visible_after"]
    # Delete (with its confirm step): gone from the grid, 410 gone from the server, unlisted.
    assert out["confirm_shown"] and out["kept_after_cancel"]
    assert out["delete_status"] == 204 and out["detail_closed_after_delete"]
    assert out["after_delete"] == 14
    assert out["after_delete_server"] == {"status": 410, "code": "gone", "listed": False,
                                          "count": 14}
    assert out["console_errors"] == []
    # Chromium logs the 410 of the test's own GET of the deleted image; nothing else.
    assert all("410" in c for c in out["delete_console_errors"]), out["delete_console_errors"]
    for name in ("detail", "gallery"):
        assert (ARTIFACTS / f"{prefix}-{name}.png").stat().st_size > 1000


def test_page_features(serve, tmp_path):
    store = tmp_path / "images"
    fill_store(serve, store, 14)
    # 4 s per image in 16 steps: the worker records progress every second.
    server = serve("--model", "test?delay_ms=4000", "--store", f"file://{store}", env=WORKER)
    ARTIFACTS.mkdir(exist_ok=True)
    out = run_features(server.url + "/", ARTIFACTS / "web")
    check_features(out, "web")
    # The bar moved: several values strictly between empty and full before the end.
    moving = [v for v in out["progress_values"] if 0 < v < 1]
    assert len(moving) > 1, out["progress_values"]
    assert out["progress_screenshot"] and (ARTIFACTS / "web-progress.png").stat().st_size > 1000


def test_page_features_under_an_api_gateway_stage(serve, tmp_path):
    """The same under /prod (no trailing slash), through a proxy that, as API Gateway REST,
    buffers each response: the event stream arrives whole at the end, and the page still
    finishes the job from it. Nothing is fetched outside the stage."""
    store = tmp_path / "images"
    fill_store(serve, store, 14)
    server = serve("--model", "test?delay_ms=2000", "--store", f"file://{store}", env=WORKER)
    proxy = StageProxy(server.url)
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        out = run_features(proxy.url + "/prod", ARTIFACTS / "web-stage")
    finally:
        proxy.stop()
    check_features(out, "web-stage")
    outside = [p for p in out["requested"] if not p.startswith("/prod")]
    assert outside == [], outside
    assert any(p.startswith("/prod/jobs/") and p.endswith("/events") for p in out["requested"])
