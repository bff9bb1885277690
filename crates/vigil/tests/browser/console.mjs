// Drives the web console in Debian's headless chromium (playwright-core).
// Run by crates/vigil/tests/console.rs inside the test network's scanner
// namespace, where the server listens; the browser talks to nothing else.
//
// Env: VIGIL_URL, VIGIL_EMAIL, VIGIL_PASSWORD (an owner), VIGIL_VIEWER_EMAIL,
// VIGIL_VIEWER_PASSWORD, VIGIL_AGENT_ID, VIGIL_AGENT_NAME, VIGIL_OPEN_PORT (a
// port open on the agent's host, not authorized), VIGIL_SCREENSHOTS (a
// directory), CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { base, checkPage, csrfOf, env, launch, logIn, post, step } from "./harness.mjs";

const agentId = env("VIGIL_AGENT_ID");
const agentName = env("VIGIL_AGENT_NAME");
const openPort = env("VIGIL_OPEN_PORT");

const browser = await launch();
try {
  const owner = await browser.newContext({ viewport: { width: 1280, height: 900 } });

  step("a wrong password is refused on the login page");
  {
    const page = await owner.newPage();
    await page.goto(`${base}/login`);
    await checkPage(page, "login");
    await page.getByLabel("Email").fill(env("VIGIL_EMAIL"));
    await page.getByLabel("Password").fill("not the password");
    const [response] = await Promise.all([
      page.waitForNavigation(),
      page.getByRole("button", { name: "Log in" }).click(),
    ]);
    assert.equal(response.status(), 401);
    await page.getByRole("alert").filter({ hasText: "Wrong email or password" }).waitFor();
    await page.close();
  }

  step("log in: session cookie, dashboard");
  const page = await logIn(owner, env("VIGIL_EMAIL"), env("VIGIL_PASSWORD"));
  const cookie = (await owner.cookies()).find((c) => c.name === "vigil_session");
  assert.ok(cookie, "vigil_session cookie");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  const response = await page.goto(`${base}/`);
  assert.equal(response.headers()["cache-control"], "no-store");
  assert.equal(response.headers()["x-frame-options"], "DENY");
  assert.match(response.headers()["content-security-policy"], /frame-ancestors 'none'/);
  const css = await page.evaluate(async () => {
    const r = await fetch(document.querySelector('link[rel="stylesheet"]').href);
    return [r.status, r.headers.get("cache-control")];
  });
  assert.deepEqual(css, [200, "public, max-age=31536000, immutable"]);
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  await page.getByRole("heading", { name: "Agents (1)" }).waitFor();
  assert.equal(await page.locator("body").getAttribute("data-refresh"), "30");
  await checkPage(page, "dashboard");

  step("agents list: search and open the agent");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Agents" }).click();
  await page.getByRole("heading", { name: "Agents" }).waitFor();
  await page.getByText("1 agent.").waitFor();
  await page.getByLabel("Search by name or hostname").fill("no-such-agent");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("0 agents match").waitFor();
  await page.getByLabel("Search by name or hostname").fill(agentName.slice(0, 3).toUpperCase());
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("1 agent match").waitFor();
  await checkPage(page, "agents");
  await page.getByRole("link", { name: agentName }).click();
  await page.waitForURL(`${base}/agents/${agentId}`);
  await page.getByRole("heading", { name: `Agent ${agentName}` }).waitFor();

  step("policy editor: a refused value keeps the input and says why");
  await page.getByLabel("Authorized ports").fill("22,ssh");
  await page.getByRole("button", { name: "Save policy" }).click();
  await page.getByRole("alert").filter({ hasText: "authorized ports" }).waitFor();
  assert.equal(await page.getByLabel("Authorized ports").inputValue(), "22,ssh");

  step("policy editor: enable and save");
  await page.getByLabel("Scan enabled").check();
  await page.getByLabel("Authorized ports").fill("22,80");
  await page.getByLabel("Monitored ports (expected open)").fill("443");
  await page.getByLabel("The agent's own host").check();
  await page.getByLabel("Other hosts (one per line, scanned by the agent)").fill("NAS.example.");
  // Organizations type any number of minutes.
  await page.getByLabel("Interval").fill("45");
  await page.getByRole("button", { name: "Save policy" }).click();
  await page.waitForURL(`${base}/agents/${agentId}?done=saved`);
  await page.getByRole("status").filter({ hasText: "Policy saved." }).waitFor();
  assert.equal(await page.getByLabel("Authorized ports").inputValue(), "22,80");
  assert.equal(await page.getByLabel("Monitored ports (expected open)").inputValue(), "443");
  assert.equal(await page.getByLabel("Other hosts (one per line, scanned by the agent)").inputValue(), "nas.example");
  assert.equal(await page.getByLabel("Interval").inputValue(), "45");
  assert.ok(await page.getByLabel("Scan enabled").isChecked());
  await checkPage(page, "agent");

  step("a POST without (or with a wrong) CSRF token is 403");
  const fields = { authorized: "1", target: "agent_host", interval: "15" };
  assert.equal(await post(page, `/agents/${agentId}/policy`, fields), 403);
  assert.equal(await post(page, `/agents/${agentId}/policy`, { ...fields, csrf: "0".repeat(64) }), 403);
  assert.equal(await post(page, "/enroll", { name: "x", plan: "extended", ttl: "60" }), 403);
  assert.equal(await post(page, "/logout", {}), 403);
  await page.reload();
  assert.equal(await page.getByLabel("Authorized ports").inputValue(), "22,80", "refused POSTs changed nothing");

  step(`the scan finds port ${openPort} open: port table, alert, dashboard`);
  const deadline = Date.now() + 150_000;
  for (;;) {
    await page.goto(`${base}/agents/${agentId}`);
    const row = page.locator("tr", { hasText: `${openPort}/tcp` }).filter({ hasText: "unauthorized" });
    if ((await row.count()) > 0) break;
    if (Date.now() > deadline) throw new Error(`no result with port ${openPort} open after 150 s`);
    await page.waitForTimeout(2000);
  }
  await page.locator("tr", { hasText: "443/tcp" }).filter({ hasText: "monitored, down" }).first().waitFor();
  await checkPage(page, "agent-results");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Alerts" }).click();
  await page.getByRole("heading", { name: "Alerts" }).waitFor();
  await page.getByText(`unauthorized port ${openPort}/tcp open`).first().waitFor();
  await checkPage(page, "alerts");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Dashboard" }).click();
  await page.getByText(`unauthorized port ${openPort}/tcp open`).first().waitFor();
  await page.getByRole("region", { name: "Table of recent scans" }).getByRole("link", { name: agentName }).first().waitFor();
  await checkPage(page, "dashboard-after-scan");

  step("enrollment: create a token, see the command and its copy button");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Enroll an agent" }).click();
  await checkPage(page, "enroll");
  await page.getByLabel("Agent name").fill("laptop");
  await page.getByRole("button", { name: "Create enrollment token" }).click();
  const command = await page.locator("#command").textContent();
  assert.match(command, /^vigil agent enroll --server https:\/\/\S+ --token vge_\S+ --pin sha256:[0-9a-f]{64}$/);
  await page.getByRole("button", { name: "Copy command" }).waitFor({ state: "visible" });
  await checkPage(page, "enrolled");

  step("without JavaScript: log in, save a policy, no copy button");
  {
    const noJs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
    const p = await logIn(noJs, env("VIGIL_EMAIL"), env("VIGIL_PASSWORD"));
    assert.equal(await p.locator('noscript').count(), 1, "the dashboard's meta refresh fallback");
    await p.goto(`${base}/agents/${agentId}`);
    await p.getByLabel("Interval").fill("60");
    await p.getByRole("button", { name: "Save policy" }).click();
    await p.waitForURL(`${base}/agents/${agentId}?done=saved`);
    assert.equal(await p.getByLabel("Interval").inputValue(), "60");
    await p.goto(`${base}/enroll`);
    await p.getByLabel("Agent name").fill("no-js");
    await p.getByRole("button", { name: "Create enrollment token" }).click();
    await p.locator("#command").waitFor();
    assert.equal(await p.getByRole("button", { name: "Copy command" }).count(), 0, "hidden without JS");
    await noJs.close();
  }

  step("viewer: pages readable, no write forms, forced POSTs 403");
  const viewerContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const viewer = await logIn(viewerContext, env("VIGIL_VIEWER_EMAIL"), env("VIGIL_VIEWER_PASSWORD"));
  const writeForms = () => viewer.locator('form[method="post"]:not([action="/logout"])').count();
  await viewer.goto(`${base}/agents/${agentId}`);
  await viewer.getByText("Viewers may only read").waitFor();
  assert.equal(await writeForms(), 0, "viewer sees no policy form");
  assert.equal(await viewer.getByRole("button", { name: "Save policy" }).count(), 0);
  await checkPage(viewer, "agent-viewer");
  await viewer.goto(`${base}/enroll`);
  assert.equal(await writeForms(), 0, "viewer sees no enrollment form");
  const viewerCsrf = await csrfOf(viewer);
  assert.equal(await post(viewer, `/agents/${agentId}/policy`, { ...fields, csrf: viewerCsrf }), 403);
  assert.equal(await post(viewer, "/enroll", { name: "x", plan: "extended", ttl: "60", csrf: viewerCsrf }), 403);
  // The owner's token is bound to the owner's session.
  assert.equal(await post(viewer, "/logout", { csrf: await csrfOf(page) }), 403);

  step("logout revokes the session");
  const session = (await owner.cookies()).find((c) => c.name === "vigil_session");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(`${base}/login`);
  await owner.addCookies([session]);
  await page.goto(`${base}/agents`);
  assert.equal(new URL(page.url()).pathname, "/login", "the old session cookie no longer works");
  console.log("console browser test passed");
} finally {
  await browser.close();
}
