// Drives the Gatehouse console in Debian's Chromium (playwright-core, no downloaded
// browser): signs in with the admin's one-time link, approves the pending production
// deploy in the inbox, and opens every page, collecting script errors and CSP
// violations. usage: node console_browser.mjs ADMIN_LINK [SCREENSHOT_DIR]
// Prints {approved, pages: {name: rows}, errors: [...]} as JSON.
import { chromium } from "playwright-core";

const [link, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const errors = [];
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
page.on("pageerror", (e) => errors.push(String(e)));
const shot = async (name) => { if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: false }); };
const out = { approved: false, pages: {}, errors };
try {
  await page.goto(link);
  await page.waitForSelector("tr[data-id] td", { timeout: 15000 });
  await shot("approvals");
  const row = page.locator("tr[data-id]", { hasText: "demo__deploy_service" }).first();
  await row.locator("input").fill("change 4211");
  await row.getByRole("button", { name: "Approve" }).click();
  await page.getByText("Nothing waits.").waitFor({ timeout: 10000 });
  out.approved = true;
  for (const [name, selector] of [["live", "canvas"], ["audit", "tbody tr"], ["inventory", "tbody tr"], ["pins", "h1"], ["keys", "tbody tr"], ["policy", "form"]]) {
    await page.goto(new URL(`/console#${name}`, link).toString());
    await page.waitForSelector(`#view ${selector}`, { timeout: 15000 });
    if (name === "live") await page.waitForTimeout(4500);
    if (name === "audit") await page.locator("#view tbody tr").first().click();
    out.pages[name] = await page.locator("#view tbody tr").count();
    await shot(name);
  }
} catch (e) {
  errors.push(`step failed: ${e.message}`);
}
await browser.close();
console.log(JSON.stringify(out));
