// Drives the web page in headless Chromium: type a prompt, click Generate, see the image appear
// in the gallery. Usage: node gallery.mjs BASE_URL SCREENSHOT_PATH
import { chromium } from "playwright-core";

const [baseUrl, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"],
});
let failed = false;
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  await page.goto(baseUrl + "/");
  await page.fill("#prompt", "a red circle on a blue background");
  await page.click("#generate");
  const figure = page.locator("#gallery figure").first();
  await figure.waitFor({ timeout: 60000 });
  // The image must actually have loaded (decoded pixels), not just be an <img> tag.
  await page.waitForFunction(() => {
    const img = document.querySelector("#gallery figure img");
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 30000 });
  const caption = await figure.locator("figcaption").textContent();
  const status = await page.textContent("#status");
  await page.screenshot({ path: screenshot, fullPage: true });
  if (!caption.includes("a red circle on a blue background")) throw new Error("caption: " + caption);
  if (!status.startsWith("Done")) throw new Error("status: " + status);
  // A reload shows the stored image from GET /images (the gallery persists).
  await page.reload();
  await page.locator("#gallery figure img").first().waitFor();
  const count = await page.locator("#gallery figure").count();
  if (count < 1) throw new Error("gallery empty after reload");
  if (consoleErrors.length) throw new Error("console errors: " + consoleErrors.join("; "));
  console.log(JSON.stringify({ ok: true, caption, status, figures: count }));
} catch (e) {
  console.error(e.stack || String(e));
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
