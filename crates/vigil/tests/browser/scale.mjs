// The console with 10,000 agents and a /16 of compliance endpoints:
// counts, filters, search, first/last pages and CSV export, each page
// checked for labels and sideways scrolling; prints how long each page
// took to load (for BENCHMARKS.md, not asserted).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { base, checkPage, env, launch, logIn, step } from "./harness.mjs";

const agents = Number(env("VIGIL_AGENTS"));
const online = Number(env("VIGIL_ONLINE"));
const silent = Number(env("VIGIL_SILENT"));
const abandoned = Number(env("VIGIL_ABANDONED"));
const endpoints = Number(env("VIGIL_ENDPOINTS"));
const noHost = Number(env("VIGIL_NO_HOST"));
// Every status: lists leave "no host at address" out unless asked.
const everyStatus = "managed_here,managed_elsewhere,no_agent,unreachable,unresolved_ad,no_host";
const noAgent = env("VIGIL_NO_AGENT").split(",");
const pages = (n) => Math.max(1, Math.ceil(n / 50));
const timings = [];

// Loads `path` and records how long until the page's load event.
async function timed(page, what, path) {
  const started = performance.now();
  const response = await page.goto(`${base}${path}`);
  timings.push([what, performance.now() - started]);
  assert.equal(response.status(), 200, `${what}: ${path}`);
}

const agentCount = (page) => page.locator("main p[aria-live]").first().textContent();
const endpointCount = (page) => page.locator("#endpoint-count").textContent();
const rows = (page) => page.locator("main tbody tr").count();

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await logIn(context, env("VIGIL_EMAIL"), env("VIGIL_PASSWORD"));

  step("dashboard: counts by health, each card a filter");
  await timed(page, "dashboard", "/");
  await page.getByRole("heading", { name: `Agents (${agents})` }).waitFor();
  for (const [label, n] of [["online", online], ["not communicating", silent], ["abandoned", abandoned]]) {
    const card = page.locator("a.card").filter({ hasText: label });
    assert.equal((await card.locator(".n").textContent()).trim(), String(n), label);
  }
  await checkPage(page, "scale-dashboard");
  await page.locator("a.card").filter({ hasText: "not communicating" }).click();
  await page.waitForURL(/\/agents\?health=not_communicating$/);
  assert.match(await agentCount(page), new RegExp(`^${silent} agents \\(not communicating\\)\\.`));
  assert.ok(await page.getByLabel("not communicating").isChecked());
  assert.equal(await rows(page), Math.min(50, silent));

  step("agents: pages of 50, first and last page, search, several healths");
  await timed(page, "agents, page 1", "/agents");
  assert.match(await agentCount(page), new RegExp(`^${agents} agents\\.`));
  assert.equal(await rows(page), 50);
  await page.getByText(`Page 1 of ${pages(agents)}`).waitFor();
  await checkPage(page, "scale-agents");
  await page.getByRole("link", { name: "Last »" }).click();
  await page.getByText(`Page ${pages(agents)} of ${pages(agents)}`).waitFor();
  assert.equal(await rows(page), agents - 50 * (pages(agents) - 1));
  await page.getByRole("cell", { name: `agent-${String(agents - 1).padStart(5, "0")}`, exact: true }).waitFor();
  await timed(page, "agents, last page", `/agents?page=${pages(agents)}`);
  await page.getByRole("link", { name: "« First" }).click();
  await page.getByText(`Page 1 of ${pages(agents)}`).waitFor();

  await page.getByLabel("Search by name or hostname").fill("HOST-04242");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/q=HOST-04242/);
  assert.match(await agentCount(page), /^1 agent matches “HOST-04242”\./);
  await page.getByRole("cell", { name: "agent-04242", exact: true }).waitFor();
  await timed(page, "agents, search", "/agents?q=agent-0424");

  await page.goto(`${base}/agents`);
  await page.getByLabel("not communicating").check();
  await page.getByLabel("abandoned").check();
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/health=not_communicating&health=abandoned/);
  assert.match(await agentCount(page), new RegExp(`^${silent + abandoned} agents \\(not communicating or abandoned\\)\\.`));
  await page.getByRole("link", { name: "Next →" }).click();
  await page.getByText(`Page 2 of ${pages(silent + abandoned)}`).waitFor();
  assert.ok(await page.getByLabel("abandoned").isChecked(), "the filter stays on the next page");
  await timed(page, "agents, health filter", "/agents?health=abandoned");
  assert.match(await agentCount(page), new RegExp(`^${abandoned} agents \\(abandoned\\)\\.`));

  step("compliance: the /16's counts, drill-down, last page, wildcard search");
  await timed(page, "compliance overview", "/compliance");
  const link = page.getByRole("link", { name: `${noHost} no host at address` });
  await link.waitFor();
  await checkPage(page, "scale-compliance");
  await link.click();
  await page.waitForURL(/\/compliance\/endpoints\?status=no_host/);
  assert.match(await endpointCount(page), new RegExp(`^${noHost} endpoints\\.`));
  assert.equal(await rows(page), 50);
  await page.getByRole("link", { name: "Last »" }).click();
  await page.getByText(`Page ${pages(noHost)} of ${pages(noHost)}`).waitFor();
  await checkPage(page, "scale-endpoints-last");
  await timed(page, "endpoints, page 1", `/compliance/endpoints?status=${everyStatus}`);
  assert.match(await endpointCount(page), new RegExp(`^${endpoints} endpoints\\.`));
  await timed(page, "endpoints, last page", `/compliance/endpoints?status=${everyStatus}&page=${pages(endpoints)}`);
  assert.equal(await rows(page), endpoints - 50 * (pages(endpoints) - 1));

  await page.goto(`${base}/compliance/endpoints`);
  await page.getByLabel("Name").fill("198.19.200.*");
  await page.getByLabel("Status").selectOption("no_host");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/name=198\.19\.200\.\*/);
  assert.match(await endpointCount(page), /^255 endpoints\./);
  await page.getByLabel("Status").selectOption("no_agent");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/status=no_agent/);
  assert.match(await endpointCount(page), /^1 endpoint\./);
  await page.getByRole("cell", { name: noAgent.find((a) => a.startsWith("198.19.200.")), exact: true }).first().waitFor();
  await timed(page, "endpoints, wildcard search", "/compliance/endpoints?name=198.19.1*.*&status=no_host");

  step("CSV export of every endpoint");
  const started = performance.now();
  const csv = await page.evaluate(async (statuses) => (await fetch(`/compliance/endpoints.csv?status=${statuses}`)).text(), everyStatus);
  timings.push(["CSV export, every endpoint", performance.now() - started]);
  const lines = csv.trim().split("\n");
  assert.equal(lines.length, endpoints + 1, "a header and one line per endpoint");
  for (const addr of noAgent) {
    assert.ok(lines.some((l) => l.includes(addr) && l.includes("no_agent")), addr);
  }

  console.log("\npage load times (ms):");
  for (const [what, ms] of timings) console.log(`  ${what.padEnd(30)} ${ms.toFixed(0)}`);
  console.log("scale browser test passed");
} finally {
  await browser.close();
}
