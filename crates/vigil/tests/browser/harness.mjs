// Shared by the console browser scripts: environment, launching chromium,
// logging in, page checks (labels, landmarks, no sideways scrolling,
// screenshots) and forced POSTs.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
export const base = env("VIGIL_URL");
export const shots = env("VIGIL_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

export const step = (what) => console.log(`- ${what}`);

// Every page: inputs are labelled, landmarks exist, and nothing scrolls
// sideways at desktop and phone widths; one screenshot per width.
export async function checkPage(page, name) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
      .filter((e) => e.labels.length === 0 && !e.getAttribute("aria-label"))
      .map((e) => e.outerHTML)
  );
  assert.deepEqual(unlabelled, [], `${name}: inputs without a label`);
  assert.equal(await page.locator("main").count(), 1, `${name}: one <main>`);
  for (const width of [1280, 375]) {
    await page.setViewportSize({ width, height: 900 });
    const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scroll <= width, `${name}: scrollWidth ${scroll} > ${width} px`);
    await page.screenshot({ path: `${shots}/${name}-${width}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

// A POST from inside the page (same origin, the session cookie goes along).
export async function post(page, path, fields) {
  return page.evaluate(
    async ([path, fields]) => {
      const r = await fetch(path, {
        method: "POST",
        body: new URLSearchParams(fields),
        redirect: "manual",
      });
      return r.status;
    },
    [path, fields]
  );
}

export const csrfOf = (page) => page.locator('form[action="/logout"] input[name="csrf"]').getAttribute("value");

export async function logIn(context, email, password) {
  const page = await context.newPage();
  await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, "/login", "unauthenticated pages redirect to /login");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(`${base}/`);
  return page;
}

export const launch = () =>
  chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
