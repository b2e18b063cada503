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
