// Drives the console's alert pages in Debian's headless chromium
// (playwright-core). Run by crates/vigil/tests/console_alerts.rs inside the
// test network's scanner namespace, where the server listens.
//
// Two open alerts exist when it starts (unauthorized ports on the agent's
// host), each with a webhook notification delivered. Env: VIGIL_URL,
// VIGIL_EMAIL, VIGIL_PASSWORD (an owner), VIGIL_VIEWER_EMAIL,
// VIGIL_VIEWER_PASSWORD, VIGIL_AGENT_NAME, VIGIL_NOTED_ALERT /
// VIGIL_NOTED_PORT (acknowledged on its page, with VIGIL_NOTE),
// VIGIL_LISTED_ALERT / VIGIL_LISTED_PORT (acknowledged from the list),
// VIGIL_HOOK_NAME (the webhook contact), VIGIL_SCREENSHOTS, CHROMIUM.
import assert from "node:assert/strict";
import { base, checkPage, csrfOf, env, launch, logIn, post, step } from "./harness.mjs";

const owner = env("VIGIL_EMAIL");
const agentName = env("VIGIL_AGENT_NAME");
const noted = { id: env("VIGIL_NOTED_ALERT"), port: env("VIGIL_NOTED_PORT") };
const listed = { id: env("VIGIL_LISTED_ALERT"), port: env("VIGIL_LISTED_PORT") };
const hook = `${env("VIGIL_HOOK_NAME")} (webhook)`;
const note = env("VIGIL_NOTE");
const titleOf = (a) => new RegExp(`Unauthorized port ${a.port}/tcp open`);

const alertsTable = (page) => page.getByRole("region", { name: "Table of alerts" });
const rowOf = (page, a) => alertsTable(page).locator("tr", { has: page.getByRole("link", { name: titleOf(a) }) });
const ackButtonOf = (page, a) => page.getByRole("button", { name: new RegExp(`^Acknowledge: Unauthorized port ${a.port}/tcp open`) });

// The list with `label` chosen in the status filter.
async function showView(page, label) {
  const link = page.getByRole("navigation", { name: "Alert status" }).getByRole("link", { name: label, exact: true });
  await link.click();
  await page.waitForURL(`${base}/alerts?status=${label.toLowerCase()}`);
  assert.equal(await link.getAttribute("aria-current"), "page", `${label} is the current view`);
}

// The history timeline's entries as { when, what, text } (text: all of it).
async function history(page) {
  const timeline = page.getByRole("region", { name: "History" }).locator("dl");
  const when = await timeline.locator("dt").allTextContents();
  const entries = await timeline.locator("dd").all();
  assert.equal(when.length, entries.length, "one time per entry");
  const out = [];
  for (const [i, dd] of entries.entries()) {
    out.push({ when: when[i].trim(), what: (await dd.locator("strong").textContent()).trim(), text: await dd.innerText() });
  }
  return out;
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await logIn(context, owner, env("VIGIL_PASSWORD"));

  step("the open alerts are listed, each with an Acknowledge button");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Alerts" }).click();
  await page.getByRole("heading", { name: "Alerts", exact: true }).waitFor();
  for (const a of [noted, listed]) {
    await rowOf(page, a).waitFor();
    assert.equal(await rowOf(page, a).getByRole("link", { name: agentName, exact: true }).count(), 1, "the agent is named");
    await ackButtonOf(page, a).waitFor();
  }
  await page.getByText("2 alerts.").waitFor();
  await checkPage(page, "alerts-open");

  step("filters: unacknowledged has both, acknowledged and resolved none, all both");
  await showView(page, "Unacknowledged");
  await page.getByText("2 alerts.").waitFor();
  await rowOf(page, noted).waitFor();
  await showView(page, "Acknowledged");
  await page.getByText("0 alerts.").waitFor();
  assert.equal(await alertsTable(page).count(), 0, "no table without alerts");
  await showView(page, "Resolved");
  await page.getByText("0 alerts.").waitFor();
  await showView(page, "All");
  await page.getByText("2 alerts.").waitFor();
  await checkPage(page, "alerts-all");

  step(`acknowledge port ${listed.port} from the list`);
  await showView(page, "Open");
  await ackButtonOf(page, listed).click();
  await page.waitForURL(/\/alerts\?status=open&page=1&done=acked$/);
  await page.getByRole("status").filter({ hasText: "Alert acknowledged." }).waitFor();
  await rowOf(page, listed).filter({ hasText: owner }).waitFor();
  assert.equal(await ackButtonOf(page, listed).count(), 0, "no button once acknowledged");
  await ackButtonOf(page, noted).waitFor();
  await rowOf(page, listed).getByText("acknowledged", { exact: true }).waitFor();

  step(`open the alert of port ${noted.port}: facts and history so far`);
  await rowOf(page, noted).getByRole("link", { name: titleOf(noted) }).click();
  await page.waitForURL(`${base}/alerts/${noted.id}`);
  await page.getByRole("heading", { level: 1, name: titleOf(noted) }).waitFor();
  const facts = page.getByRole("region", { name: "Overview" });
  await facts.getByRole("link", { name: agentName, exact: true }).waitFor();
  await facts.getByText("not yet").waitFor();
  let rows = await history(page);
  assert.deepEqual(
    rows.map((r) => r.what),
    ["Raised", "Notification queued", "Notification delivered"],
    `history before acknowledging: ${JSON.stringify(rows)}`
  );
  assert.ok(rows[1].text.includes(hook), `queued for the webhook contact: ${rows[1].text}`);
  assert.match(rows[1].text, titleOf(noted), "the queued notification's title");
  assert.ok(rows[2].text.includes(hook), `delivered to the webhook contact: ${rows[2].text}`);
  assert.ok(rows[2].text.includes("attempt 1"), rows[2].text);
  await checkPage(page, "alert");

  step("a note that is too long is refused with the reason, nothing changes");
  const csrf = await csrfOf(page);
  assert.equal(await post(page, `/alerts/${noted.id}/ack`, { csrf, note: "x".repeat(2001) }), 422);
  assert.equal(await post(page, `/alerts/${noted.id}/ack`, { note: "no token" }), 403);
  await page.reload();
  await facts.getByText("not yet").waitFor();

  step("acknowledge it with a note");
  await page.getByLabel("Note (optional)").fill(note);
  await page.getByRole("button", { name: "Acknowledge", exact: true }).click();
  await page.waitForURL(`${base}/alerts/${noted.id}?done=acked`);
  await page.getByRole("status").filter({ hasText: "Alert acknowledged." }).waitFor();
  const ack = page.getByRole("region", { name: "Acknowledgement" });
  await ack.getByText(`Acknowledged by ${owner}`).waitFor();
  await ack.getByText(note).waitFor();
  assert.equal(await page.getByLabel("Note (optional)").count(), 0, "the form is gone");
  rows = await history(page);
  assert.deepEqual(
    rows.map((r) => r.what),
    ["Raised", "Notification queued", "Notification delivered", "Acknowledged"],
    `history after acknowledging: ${JSON.stringify(rows)}`
  );
  assert.ok(rows[3].text.includes(owner) && rows[3].text.includes(note), `who acknowledged, and the note: ${rows[3].text}`);
  for (const r of rows) assert.match(r.when, /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/, "each entry has its time");
  await checkPage(page, "alert-acknowledged");

  step("filters after acknowledging: both acknowledged, none unacknowledged");
  await page.getByRole("link", { name: "← Alerts" }).click();
  await showView(page, "Acknowledged");
  await page.getByText("2 alerts.").waitFor();
  await rowOf(page, noted).filter({ hasText: owner }).waitFor();
  assert.equal(await page.getByRole("button", { name: /^Acknowledge/ }).count(), 0);
  await checkPage(page, "alerts-acknowledged");
  await showView(page, "Unacknowledged");
  await page.getByText("0 alerts.").waitFor();

  step("viewer: reads the list and the history, no Acknowledge button, a forced POST is 403");
  const viewerContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const viewer = await logIn(viewerContext, env("VIGIL_VIEWER_EMAIL"), env("VIGIL_VIEWER_PASSWORD"));
  await viewer.goto(`${base}/alerts?status=all`);
  await rowOf(viewer, noted).waitFor();
  await rowOf(viewer, listed).waitFor();
  assert.equal(await viewer.getByRole("button", { name: /^Acknowledge/ }).count(), 0, "viewer sees no Acknowledge button");
  assert.equal(await viewer.getByRole("columnheader", { name: "Action" }).count(), 0);
  await checkPage(viewer, "alerts-viewer");
  await viewer.goto(`${base}/alerts/${noted.id}`);
  await viewer.getByText(`Acknowledged by ${owner}`).waitFor();
  assert.equal((await history(viewer)).length, 4, "the viewer sees the same history");
  assert.equal(await viewer.locator('form[method="post"]:not([action="/logout"])').count(), 0, "no write forms");
  const viewerCsrf = await csrfOf(viewer);
  assert.equal(await post(viewer, `/alerts/${noted.id}/ack`, { csrf: viewerCsrf, note: "mine" }), 403);
  assert.equal(await post(viewer, `/alerts/${listed.id}/ack`, { csrf: viewerCsrf }), 403);
  await checkPage(viewer, "alert-viewer");
  // Unknown and malformed alert ids are a 404 page.
  for (const path of ["/alerts/00000000-0000-4000-8000-000000000000", "/alerts/nope"]) {
    const response = await viewer.goto(`${base}${path}`);
    assert.equal(response.status(), 404, path);
  }
  console.log("alerts browser test passed");
} finally {
  await browser.close();
}
