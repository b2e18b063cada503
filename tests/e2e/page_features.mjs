// Drives the grown-up page in headless Chromium: keyboard submit (Ctrl+Enter) of a JPEG job, the
// progress bar sampled while the job runs, the detail view's provenance, "use these settings
// again", the gallery's paging, and deleting an image from its detail view. Prints one JSON line of what it saw; the pytest side
// (tests/integration/test_web_page.py) judges it.
// Usage: node page_features.mjs PAGE_URL ARTIFACT_PREFIX
import { chromium } from "playwright-core";

const [pageUrl, prefix] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"],
});
const out = { ok: false };
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  const requested = [];
  const imageTypes = {};
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.protocol.startsWith("http")) requested.push(u.pathname);  // not blob: or data:
  });
  page.on("response", (r) => {
    const path = new URL(r.url()).pathname;
    if (path.includes("/images/")) imageTypes[path] = r.headers()["content-type"];
  });
  const galleryLoaded = () => page.waitForSelector("#gallery[aria-busy=false]", { timeout: 30000 });
  await page.goto(pageUrl);
  await galleryLoaded();
  out.first_page = await page.locator("#gallery figure").count();
  const firstBefore = await page.locator("#gallery figure").first().getAttribute("data-key");

  // Keyboard submit: the settings, then Ctrl+Enter in the prompt (Enter alone is a newline).
  await page.evaluate(() => { document.querySelector("#options").open = true; });
  await page.fill("#prompt", "a yellow star");
  await page.fill("#seed", "7");
  await page.fill("#steps", "16");
  await page.selectOption("#format", "jpeg");
  await page.focus("#prompt");
  await page.keyboard.press("Enter");
  out.enter_alone_submitted = (await page.textContent("#status")) !== "";
  await page.fill("#prompt", "a yellow star");
  await page.keyboard.press("Control+Enter");

  // The progress bar, sampled every 50 ms until the status says done.
  const samples = [];
  let shot = false;
  const until = Date.now() + 90000;
  for (;;) {
    const s = await page.evaluate(() => ({
      value: document.querySelector("#progress").hasAttribute("value") ? document.querySelector("#progress").value : null,
      visible: !document.querySelector("#job").hidden,
      text: document.querySelector("#progress-text").textContent,
      status: document.querySelector("#status").textContent,
    }));
    if (s.status.startsWith("Done") || s.status.includes(":")) { out.status = s.status; break; }
    if (s.visible) samples.push(s.value);
    if (!shot && s.visible && s.value > 0 && s.value < 1) {
      await page.screenshot({ path: prefix + "-progress.png" });
      shot = true;
    }
    if (Date.now() > until) throw new Error("no end; status " + s.status);
    await page.waitForTimeout(50);
  }
  out.progress_values = [...new Set(samples.filter((v) => v !== null))];
  out.progress_screenshot = shot;

  // The new image: first in the gallery, a JPEG. "Done" can show before the gallery has
  // reloaded (a buffering proxy delivers the stream's end and the listing close together):
  // wait for a first figure other than the one before the submit.
  const figure = page.locator("#gallery figure").first();
  await page.waitForFunction((before) => {
    const first = document.querySelector("#gallery figure");
    const img = first && first.querySelector("img");
    return first && first.getAttribute("data-key") !== before && img && img.complete &&
      img.naturalWidth > 0;
  }, firstBefore, { timeout: 30000 });
  out.new_key = await figure.getAttribute("data-key");
  out.new_type = await figure.getAttribute("data-type");
  out.served_type = Object.entries(imageTypes).find(([p]) => p.endsWith("/" + out.new_key))?.[1] || null;

  // Detail view with provenance.
  await figure.locator("button.open").click();
  await page.locator("#detail[open]").waitFor();
  out.provenance = await page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll("#provenance dd")].map((dd) => [dd.dataset.field, dd.textContent])));
  out.detail_image_loaded = await page.evaluate(() => {
    const i = document.querySelector("#detail-image");
    return i.complete && i.naturalWidth > 0;
  });
  await page.screenshot({ path: prefix + "-detail.png" });

  // "Use these settings again" after the form was changed.
  await page.evaluate(() => {
    for (const [id, v] of [["prompt", "something else"], ["seed", ""], ["steps", "3"]]) document.getElementById(id).value = v;
    document.getElementById("format").value = "webp";
  });
  await page.click("#reuse");
  out.detail_closed = !(await page.evaluate(() => document.querySelector("#detail").open));
  out.form_after_reuse = await page.evaluate(() => Object.fromEntries(
    ["prompt", "seed", "steps", "format", "size"].map((id) => [id, document.getElementById(id).value])));

  // Paging: a reload shows the first page; "Load more" appends the next one.
  await page.reload();
  await galleryLoaded();
  out.page1 = await page.locator("#gallery figure").count();
  out.more_visible = await page.locator("#more").isVisible();
  if (out.more_visible) {
    await page.click("#more");
    await page.waitForFunction((n) => document.querySelectorAll("#gallery figure").length > n, out.page1, { timeout: 30000 });
    await galleryLoaded();
    out.after_more = await page.locator("#gallery figure").count();
    out.keys = await page.evaluate(() => [...document.querySelectorAll("#gallery figure")].map((f) => f.dataset.key));
    out.more_visible_after = await page.locator("#more").isVisible();
  }
  await page.screenshot({ path: prefix + "-gallery.png", fullPage: true });
  out.console_errors = [...consoleErrors];

  // Delete from the detail view: "Keep it" keeps it; confirming removes it from the grid, and
  // the server answers 410 for it and lists it no more.
  const target = page.locator(`#gallery figure[data-key="${out.new_key}"]`);
  await target.locator("button.open").click();
  await page.locator("#detail[open]").waitFor();
  await page.click("#delete");
  out.confirm_shown = await page.locator("#confirm-delete").isVisible();
  await page.click("#delete-cancel");
  out.kept_after_cancel = (await target.count()) === 1 && !(await page.locator("#confirm-delete").isVisible());
  await page.click("#delete");
  const deleted = page.waitForResponse((r) => r.request().method() === "DELETE");
  await page.click("#delete-confirm");
  out.delete_status = (await deleted).status();
  await page.waitForFunction((key) => !document.querySelector(`#gallery figure[data-key="${key}"]`), out.new_key, { timeout: 30000 });
  out.detail_closed_after_delete = !(await page.evaluate(() => document.querySelector("#detail").open));
  out.after_delete = await page.locator("#gallery figure").count();
  out.after_delete_server = await page.evaluate(async (key) => {
    const got = await fetch(imageUrl(key), { headers: headers() });
    const body = await got.json();
    const listed = await (await fetch(api("images?limit=100"), { headers: headers() })).json();
    return { status: got.status, code: body.error.code, listed: listed.images.some((i) => i.key === key), count: listed.images.length };
  }, out.new_key);
  out.requested = [...new Set(requested)];
  out.delete_console_errors = consoleErrors.slice(out.console_errors.length);
  out.ok = true;
} catch (e) {
  console.error(e.stack || String(e));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
