// An agent's "History and reachability" page in Debian's headless chromium
// (playwright-core). Run by crates/vigil/tests/console_history.rs once per
// phase, inside the test network's scanner namespace:
//
//   policy: the owner changes the policy; the history says so, by whom and
//           what changed; the agent's timeline is all up; window switcher.
//   down:   the agent was stopped: health change and suspended scan in the
//           history, an ongoing outage in the timeline (below 100 %).
//   back:   the agent runs again: back in the history, the outage over.
//
// Env: VIGIL_URL, VIGIL_PHASE, VIGIL_EMAIL, VIGIL_PASSWORD (an owner),
// VIGIL_AGENT_ID, VIGIL_AGENT_NAME, VIGIL_SCREENSHOTS, CHROMIUM.
import assert from "node:assert/strict";
import { base, checkPage, env, launch, logIn, step } from "./harness.mjs";

const phase = env("VIGIL_PHASE");
const email = env("VIGIL_EMAIL");
const agentId = env("VIGIL_AGENT_ID");
const agentName = env("VIGIL_AGENT_NAME");
const historyUrl = `${base}/agents/${agentId}/history`;

// The history's entries as {when, event, by, details}, newest first.
async function historyRows(page) {
  const list = page.getByRole("list", { name: `History of agent ${agentName}` });
  return list.getByRole("listitem").evaluateAll((items) =>
    items.map((li) => {
      const text = (sel) => li.querySelector(sel)?.textContent.trim() ?? "";
      return { when: text("time"), event: text(".event"), by: text(".actor"), details: text(".detail") };
    })
  );
}

function findRow(rows, event, details) {
  return rows.find((r) => r.event === event && r.details === details);
}

// The agent's timeline bar: its label, its share up, its down segments.
async function agentBar(page) {
  const bar = page.locator('svg[data-kind="agent"]');
  assert.equal(await bar.count(), 1, "one timeline row for the agent");
  assert.equal(await bar.getAttribute("role"), "img");
  assert.equal(await bar.getAttribute("width"), "100%");
  assert.match(await bar.getAttribute("viewBox"), /^0 0 1000 \d+$/);
  const label = await bar.getAttribute("aria-label");
  const m = label.match(/^Agent reachable ([\d.]+) % of the last (24 h|7 d|30 d)$/);
  assert.ok(m, `aria-label ${JSON.stringify(label)}`);
  const downs = await bar.locator('rect[data-state="down"]').evaluateAll((rects) =>
    rects.map((r) => r.querySelector("title")?.textContent ?? "")
  );
  const box = await bar.boundingBox();
  return { label, percent: Number(m[1]), window: m[2], downs, width: box.width };
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await logIn(context, email, env("VIGIL_PASSWORD"));

  if (phase === "policy") {
    step("the agent's page links to its history");
    await page.goto(`${base}/agents/${agentId}`);
    const tabs = page.getByRole("navigation", { name: "Agent pages" });
    assert.equal(await tabs.getByRole("link", { name: "Overview" }).getAttribute("aria-current"), "page");
    await tabs.getByRole("link", { name: "History and reachability" }).click();
    await page.waitForURL(historyUrl);
    await page.getByRole("heading", { name: "History", exact: true }).waitFor();
    let rows = await historyRows(page);
    assert.equal(rows[0].event, "Policy changed", JSON.stringify(rows));
    assert.equal(rows[0].by, email);
    assert.match(rows[0].details, /^policy created: scan enabled; authorized ports 22;/);
    assert.equal(rows.at(-1).event, "Enrolled");
    assert.equal(rows.at(-1).by, "system");

    step("the owner changes the policy in the browser");
    await page.getByRole("navigation", { name: "Agent pages" }).getByRole("link", { name: "Overview" }).click();
    await page.waitForURL(`${base}/agents/${agentId}`);
    await page.getByLabel("Authorized ports").fill("22,80");
    await page.getByLabel("Monitored ports (expected open)").fill("443");
    await page.getByLabel("Interval").fill("45");
    await page.getByRole("button", { name: "Save policy" }).click();
    await page.waitForURL(`${base}/agents/${agentId}?done=saved`);
    await page.getByRole("status").filter({ hasText: "Policy saved." }).waitFor();

    step("the history says who changed what, newest first");
    await page.getByRole("link", { name: "History and reachability" }).click();
    await page.waitForURL(historyUrl);
    rows = await historyRows(page);
    assert.deepEqual(
      { event: rows[0].event, by: rows[0].by, details: rows[0].details },
      {
        event: "Policy changed",
        by: email,
        details: "authorized ports added 80; monitored ports added 443; interval 60 → 45 min",
      },
      JSON.stringify(rows)
    );
    assert.match(rows[0].when, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    await page.getByText(`${rows.length} entries, newest first.`).waitFor();

    step("the timeline: the agent was reachable all along");
    const bar = await agentBar(page);
    assert.equal(bar.label, "Agent reachable 100 % of the last 24 h");
    assert.deepEqual(bar.downs, []);
    await page.getByText("None: everything known was up.").waitFor();
    await checkPage(page, "history");

    step("the window switcher: 7 d");
    const windows = page.getByRole("navigation", { name: "Time window" });
    assert.equal(await windows.getByRole("link", { name: "24 h" }).getAttribute("aria-current"), "page");
    await windows.getByRole("link", { name: "7 d" }).click();
    await page.waitForURL(`${historyUrl}?window=7d`);
    assert.equal(await windows.getByRole("link", { name: "7 d" }).getAttribute("aria-current"), "page");
    assert.equal((await agentBar(page)).window, "7 d");
    await page.getByRole("heading", { name: "Outages in the last 7 d" }).waitFor();
    // An unknown window is the default one.
    await page.goto(`${historyUrl}?window=1y`);
    assert.equal((await agentBar(page)).window, "24 h");
  } else if (phase === "down") {
    step("the agent stopped: the history says so");
    await page.goto(historyUrl);
    const rows = await historyRows(page);
    const health = findRow(rows, "Health changed", "communicating → not communicating");
    assert.ok(health, JSON.stringify(rows));
    assert.equal(health.by, "system");
    assert.ok(
      findRow(rows, "Scan suspended", "the agent is not communicating; scans resume when it is back"),
      JSON.stringify(rows)
    );

    step("the timeline: an ongoing outage, below 100 %");
    const bar = await agentBar(page);
    assert.ok(bar.percent < 100, bar.label);
    assert.equal(bar.downs.length, 1, JSON.stringify(bar.downs));
    assert.match(bar.downs[0], /^Agent down since .* \(ongoing, .* so far\)$/);
    const outages = page.getByRole("list", { name: "Outages in the last 24 h" });
    await outages.getByRole("listitem").filter({ hasText: /^Agent down since .*ongoing/ }).waitFor();
    await checkPage(page, "history-down");
    await page.setViewportSize({ width: 375, height: 900 });
    const narrow = await agentBar(page);
    assert.ok(narrow.width <= 375 && narrow.width > 250, `bar width ${narrow.width} at 375 px`);
  } else if (phase === "back") {
    step("the agent runs again: the history says so");
    await page.goto(historyUrl);
    const rows = await historyRows(page);
    const back = findRow(rows, "Health changed", "not communicating → communicating");
    assert.ok(back, JSON.stringify(rows));
    assert.ok(rows.indexOf(back) < rows.indexOf(findRow(rows, "Health changed", "communicating → not communicating")));
    assert.ok(findRow(rows, "Scan resumed", "the agent communicates again; scans run at the policy's interval"));

    step("the timeline: the outage is over and still counted");
    const bar = await agentBar(page);
    assert.ok(bar.percent < 100, bar.label);
    assert.equal(bar.downs.length, 1, JSON.stringify(bar.downs));
    assert.match(bar.downs[0], /^Agent down from .* to .* \(.*\)$/);
    assert.doesNotMatch(bar.downs[0], /ongoing/);
    const outages = page.getByRole("list", { name: "Outages in the last 24 h" });
    await outages.getByRole("listitem").filter({ hasText: /^Agent down from/ }).waitFor();
    await checkPage(page, "history-back");
  } else {
    throw new Error(`unknown VIGIL_PHASE ${phase}`);
  }
  console.log(`history browser test, phase ${phase}: passed`);
} finally {
  await browser.close();
}
