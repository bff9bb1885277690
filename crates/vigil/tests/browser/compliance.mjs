// Drives the console's compliance pages in headless chromium. Run by
// crates/vigil/tests/console_compliance.rs inside the scanner namespace.
//
// Env: VIGIL_URL, VIGIL_EMAIL, VIGIL_PASSWORD (an owner), VIGIL_VIEWER_EMAIL,
// VIGIL_VIEWER_PASSWORD, VIGIL_SCOPE (an IP range of 64 addresses),
// VIGIL_OURS (+ _ID: an agent enrolled here), VIGIL_THEIRS (an agent of
// another server), VIGIL_ONLY_135, VIGIL_BARE (hosts without an agent),
// VIGIL_SSH_KEY (a private key file no host accepts), VIGIL_SCREENSHOTS,
// CHROMIUM.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { base, checkPage, csrfOf, env, launch, logIn, post, step } from "./harness.mjs";

const scope = env("VIGIL_SCOPE");
const ours = env("VIGIL_OURS");
const oursId = env("VIGIL_OURS_ID");
const only135 = env("VIGIL_ONLY_135");
const bare = env("VIGIL_BARE");
const theirs = env("VIGIL_THEIRS");

const nav = (page, name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });
const countText = (page) => page.locator("#endpoint-count").textContent();

// Waits on the overview (which reloads itself while running) until the
// assessment is no longer running; returns what it saw.
async function watchUntilDone(page) {
  const seen = { running: false, refresh: null };
  const deadline = Date.now() + 120_000;
  for (;;) {
    let state = null;
    try {
      // The state and the reload attribute of one and the same page: read
      // apart, a reload in between (every 2 s while running) could pair a
      // running state with the finished page's missing attribute.
      const snap = await page.evaluate(() => ({
        state: document.querySelector("#assessment-state")?.textContent.trim() ?? null,
        refresh: document.body?.getAttribute("data-refresh") ?? null,
      }));
      state = snap.state;
      if (state === "running") {
        seen.running = true;
        seen.refresh = snap.refresh;
      }
    } catch {
      // In the middle of a reload.
    }
    if (state && state !== "running") return { ...seen, state };
    if (Date.now() > deadline) throw new Error("the assessment did not finish in 120 s");
    await page.waitForTimeout(300);
  }
}

const browser = await launch();
try {
  const owner = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await logIn(owner, env("VIGIL_EMAIL"), env("VIGIL_PASSWORD"));

  step("overview before any assessment");
  await nav(page, "Compliance").click();
  await page.getByRole("heading", { name: "Compliance", exact: true }).first().waitFor();
  await page.getByText("No assessment has run yet.").waitFor();
  await checkPage(page, "compliance-empty");

  step("scope editor: a refused scope keeps the input and says why (422)");
  await page.getByRole("navigation", { name: "Compliance" }).getByRole("link", { name: "Scope" }).click();
  await page.getByRole("heading", { name: "Compliance scope" }).waitFor();
  await checkPage(page, "compliance-scope");
  await page.getByLabel("Assess IP ranges").check();
  await page.getByLabel("IP ranges (one per line)").fill("2001:db8::/104");
  const [refused] = await Promise.all([
    page.waitForNavigation(),
    page.getByRole("button", { name: "Save only" }).click(),
  ]);
  assert.equal(refused.status(), 422);
  await page.getByRole("alert").filter({ hasText: "65,536" }).waitFor();
  assert.equal(await page.getByLabel("IP ranges (one per line)").inputValue(), "2001:db8::/104");
  assert.ok(await page.getByLabel("Assess IP ranges").isChecked());
  await checkPage(page, "compliance-scope-refused");

  step("scope editor: save and re-assess");
  await page.getByLabel("IP ranges (one per line)").fill(scope);
  await page.getByLabel("Agent ports").fill("47760");
  await page.getByLabel("Unreachable-check port").fill("135");
  await page.getByLabel("On demand (contact every endpoint)").check();
  await page.getByRole("button", { name: "Save and re-assess" }).click();
  await page.waitForURL(`${base}/compliance?done=started`);
  await page.getByRole("status").filter({ hasText: "Assessment started." }).waitFor();

  step("overview: progress while running, counts when done");
  const seen = await watchUntilDone(page);
  assert.equal(seen.state, "done", JSON.stringify(seen));
  console.log(`  seen running: ${seen.running}, data-refresh: ${seen.refresh}`);
  if (seen.running) assert.equal(seen.refresh, "2", "reloads itself while running");
  assert.equal(await page.locator("body").getAttribute("data-refresh"), null, "no reload once done");
  assert.equal((await page.locator("#progress-text").textContent()).trim(), "64 of 64");
  for (const [n, label] of [
    [1, "managed here"],
    [1, "managed elsewhere (unverified)"],
    [2, "no agent"],
    [0, "unreachable"],
    [0, "unresolved AD"],
    [60, "no host at address"],
  ]) {
    await page.getByRole("link", { name: `${n} ${label}`, exact: true }).first().waitFor();
  }
  await checkPage(page, "compliance-overview");

  step("a count opens the list filtered by its status");
  await page.getByRole("link", { name: "2 no agent", exact: true }).click();
  await page.waitForURL(`${base}/compliance/endpoints?status=no_agent`);
  assert.match(await countText(page), /^2 endpoints\./);
  assert.equal(await page.getByLabel("Status").inputValue(), "no_agent");
  for (const host of [only135, bare]) {
    await page.getByRole("cell", { name: host, exact: true }).first().waitFor();
  }
  await checkPage(page, "compliance-endpoints");

  step("the agent of this server links to its page; the other server's is named");
  await page.goto(`${base}/compliance/endpoints?status=managed_here`);
  await page.getByRole("link", { name: oursId }).waitFor();
  await page.getByRole("cell", { name: ours, exact: true }).first().waitFor();
  await page.goto(`${base}/compliance/endpoints?status=managed_elsewhere`);
  await page.getByRole("cell", { name: theirs, exact: true }).first().waitFor();
  await page.getByText("server 0b4c1d2e-").waitFor();
  // Named by the host name its agent reported (the list says so).
  await page.getByRole("cell", { name: "Agent", exact: true }).first().waitFor();

  step("move: the outcome per agent (no trusted peer for that server here)");
  // (Named by the host name its agent reports.)
  await page.getByRole("button", { name: /^Move agent of .+ here$/ }).click();
  await page.getByRole("heading", { name: "Move agents here" }).waitFor();
  const outcome = page.getByRole("region", { name: "Move outcomes" }).locator("tbody tr");
  assert.equal(await outcome.count(), 1);
  assert.match(await outcome.textContent(), /error.*no trusted peer for server 0b4c1d2e-/);
  await checkPage(page, "compliance-move");

  step("install: the form prefilled from the list, a refused key, the manual command");
  await page.goto(`${base}/compliance/endpoints?status=no_agent`);
  await page.getByRole("link", { name: `Install agent on ${only135}` }).click();
  await page.getByRole("heading", { name: "Install agents" }).waitFor();
  assert.equal(await page.getByLabel("Addresses (one per line)").inputValue(), only135);
  await checkPage(page, "compliance-install");
  await page.getByLabel("Private key (used for this job only, never stored)").fill("not a key");
  const [refusedKey] = await Promise.all([
    page.waitForNavigation(),
    page.getByRole("button", { name: "Start install" }).click(),
  ]);
  assert.equal(refusedKey.status(), 422);
  await page.getByRole("alert").waitFor();
  assert.equal(await page.getByLabel("Private key (used for this job only, never stored)").inputValue(), "", "the key is never echoed");
  assert.equal(await page.getByLabel("Addresses (one per line)").inputValue(), only135);
  await page.getByRole("button", { name: "Create install command" }).click();
  assert.match(await page.locator("#install-command").textContent(), /^curl .*vge_\S+/);
  await page.getByRole("button", { name: "Copy command" }).waitFor({ state: "visible" });
  await checkPage(page, "compliance-install-command");

  step("install: a push job to a host without SSH fails on its progress page");
  await page.goto(`${base}/compliance/install?addr=${only135}`);
  await page.getByLabel("Private key (used for this job only, never stored)").fill(readFileSync(env("VIGIL_SSH_KEY"), "utf8"));
  await page.getByLabel("Start the agent").selectOption("detached");
  await page.getByRole("button", { name: "Start install" }).click();
  await page.waitForURL(/\/compliance\/install\/[^/]+$/);
  await page.getByRole("heading", { name: "Install job" }).waitFor();
  const jobDeadline = Date.now() + 60_000;
  for (;;) {
    const state = await page.locator("#job-state").textContent().catch(() => "");
    if (state.trim() === "done") break;
    if (Date.now() > jobDeadline) throw new Error("the install job did not finish in 60 s");
    await page.waitForTimeout(500);
  }
  const host = page.getByRole("region", { name: "Install hosts" }).locator("tbody tr");
  assert.match(await host.textContent(), new RegExp(`${only135.replaceAll(".", "\\.")}.*failed`));
  await checkPage(page, "compliance-install-job");

  step("search: wildcard name and status; refused values are named");
  await page.goto(`${base}/compliance/endpoints`);
  // The 60 silent addresses (no host at address) are left out by default.
  assert.match(await countText(page), /^4 endpoints\./);
  await page.getByText("left out unless you pick").waitFor();
  await page.getByLabel("Name").fill("198.51.100.2*");
  await page.getByLabel("Status").selectOption("no_agent");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/name=198\.51\.100\.2\*/);
  assert.match(await countText(page), /^1 endpoint\./);
  await page.getByRole("cell", { name: only135, exact: true }).first().waitFor();
  await checkPage(page, "compliance-search");

  step("CSV export carries the filters");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Export CSV" }).click(),
  ]);
  assert.match(download.suggestedFilename(), /^vigil-endpoints-.+\.csv$/);
  const csv = readFileSync(await download.path(), "utf8").trim().split("\n");
  assert.equal(csv[0].split(",")[0], "name", csv.join("\n"));
  assert.equal(csv.length, 2, csv.join("\n"));
  assert.ok(csv[1].includes(only135) && csv[1].includes("no_agent"), csv[1]);
  const all = await page.evaluate(async () => (await fetch("/compliance/endpoints.csv")).text());
  assert.equal(all.trim().split("\n").length, 5, "every endpoint but the empty addresses without filters");

  step("pages of 50");
  await page.goto(`${base}/compliance/endpoints?status=no_host`);
  assert.match(await countText(page), /^60 endpoints\./);
  assert.equal(await page.locator("tbody tr").count(), 50);
  await page.getByText("Page 1 of 2").waitFor();
  await page.getByRole("link", { name: "Next →" }).click();
  await page.getByText("Page 2 of 2").waitFor();
  assert.equal(await page.locator("tbody tr").count(), 10);
  assert.equal(await page.getByLabel("Status").inputValue(), "no_host", "the filter stays on the next page");
  await page.goto(`${base}/compliance/endpoints?ip=not-an-ip`);
  await page.getByRole("alert").filter({ hasText: "ip:" }).waitFor();

  step("run an assessment now from the overview");
  await page.goto(`${base}/compliance`);
  await page.getByRole("button", { name: "Run assessment now" }).click();
  await page.waitForURL(`${base}/compliance?done=started`);
  assert.equal((await watchUntilDone(page)).state, "done");

  step("schedule: a refused interval, then every 45 minutes; history");
  await page.getByRole("navigation", { name: "Compliance" }).getByRole("link", { name: "Schedule" }).click();
  await page.getByRole("heading", { name: "Compliance schedule" }).waitFor();
  await page.getByLabel("Scheduled assessments enabled").check();
  await page.getByLabel("Every N minutes").check();
  await page.getByLabel("Interval").fill("0");
  await page.getByLabel("Interval").evaluate((e) => e.removeAttribute("min"));
  await page.getByRole("button", { name: "Save schedule" }).click();
  await page.getByRole("alert").waitFor();
  await page.getByLabel("Interval").fill("45");
  await page.getByRole("button", { name: "Save schedule" }).click();
  await page.waitForURL(`${base}/compliance/schedule?done=saved`);
  assert.equal(await page.getByLabel("Interval").inputValue(), "45");
  assert.ok(await page.getByLabel("Scheduled assessments enabled").isChecked());
  assert.equal(await page.getByRole("region", { name: "Assessment history" }).locator("tbody tr").count(), 2);
  await checkPage(page, "compliance-schedule");

  step("viewer: read-only pages, no write forms, forced POSTs 403");
  const viewerContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const viewer = await logIn(viewerContext, env("VIGIL_VIEWER_EMAIL"), env("VIGIL_VIEWER_PASSWORD"));
  const writeForms = () => viewer.locator('form[method="post"]:not([action="/logout"])').count();
  for (const path of ["/compliance", "/compliance/scope", "/compliance/endpoints?status=managed_elsewhere", "/compliance/endpoints?status=no_agent", "/compliance/schedule"]) {
    await viewer.goto(`${base}${path}`);
    assert.equal(await writeForms(), 0, `viewer sees no write form on ${path}`);
  }
  await viewer.goto(`${base}/compliance/scope`);
  await viewer.getByText("Viewers may only read").waitFor();
  await viewer.getByText(scope).waitFor();
  await checkPage(viewer, "compliance-scope-viewer");
  const csrf = await csrfOf(viewer);
  assert.equal(await post(viewer, "/compliance/scope", { csrf, ip_enabled: "on", ranges: "198.51.100.0/30", agent_ports: "1" }), 403);
  assert.equal(await post(viewer, "/compliance/assessments", { csrf }), 403);
  assert.equal(await post(viewer, "/compliance/schedule", { csrf, kind: "every", every: "60" }), 403);
  assert.equal(await post(viewer, "/compliance/move", { csrf, agent_id: "0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3" }), 403);
  assert.equal(await post(viewer, "/compliance/install-command", { csrf }), 403);
  assert.equal(await post(viewer, "/compliance/install", { csrf, addresses: only135, private_key: "x" }), 403);
  assert.equal((await viewer.goto(`${base}/compliance/install?addr=${only135}`)).status(), 403);
  // Without the token even the owner is refused.
  assert.equal(await post(page, "/compliance/assessments", {}), 403);
  await viewer.goto(`${base}/compliance/scope`);
  await viewer.getByText(scope).waitFor();
  console.log("compliance browser test passed");
} finally {
  await browser.close();
}
