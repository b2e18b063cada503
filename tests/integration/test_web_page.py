"""The web page in headless Chromium: type a prompt, click Generate, see the image in the gallery."""
import json
import subprocess

from conftest import ROOT

ARTIFACTS = ROOT / "artifacts"


def run_browser(url, screenshot):
    return subprocess.run(["node", str(ROOT / "tests/e2e/gallery.mjs"), url, str(screenshot)],
                          capture_output=True, text=True, timeout=180, cwd=ROOT / "tests/e2e")


def test_generate_from_the_page(serve):
    server = serve("--model", "test")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-page.png"
    r = run_browser(server.url, shot)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["ok"] and out["figures"] >= 1
    assert shot.stat().st_size > 1000


def test_page_works_with_api_keys(serve):
    """A protected server: the page's key field is sent as a bearer token."""
    server = serve("--model", "test", env={"IMAGEGEN_API_KEYS": "page-key"})
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

            do_GET = do_POST = _forward

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
    server = serve("--model", "test")
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
