// Drives the console's contacts and notification rules in headless
// chromium. Run by crates/vigil/tests/console_contacts.rs inside the
// scanner namespace, where the server, its SMTP server and the webhook
// receiver listen.
//
// Env: VIGIL_URL, VIGIL_EMAIL, VIGIL_PASSWORD (an owner), VIGIL_VIEWER_EMAIL,
// VIGIL_VIEWER_PASSWORD, VIGIL_MAIL_TO (an address the SMTP server accepts),
// VIGIL_HOOK_URL (the webhook receiver), VIGIL_OFFICE_NAME/_ID and
// VIGIL_LAB_NAME/_ID (two agents whose names share "alpha"),
// VIGIL_SCREENSHOTS, CHROMIUM.
import assert from "node:assert/strict";
import { base, checkPage, csrfOf, env, launch, logIn, post, step } from "./harness.mjs";

const mailTo = env("VIGIL_MAIL_TO");
const hookUrl = env("VIGIL_HOOK_URL");
const office = { name: env("VIGIL_OFFICE_NAME"), id: env("VIGIL_OFFICE_ID") };
const lab = { name: env("VIGIL_LAB_NAME"), id: env("VIGIL_LAB_ID") };

const nav = (page, name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });
const contactsTable = (page) => page.getByRole("region", { name: "Contacts" });
const rulesTable = (page) => page.getByRole("region", { name: "Notification rules" });

// Clicks a submit button and returns the status of the page it leads to.
async function submit(page, name) {
  const [response] = await Promise.all([
    page.waitForNavigation(),
    page.getByRole("button", { name, exact: true }).click(),
  ]);
  return response.status();
}

// Fills the "Add a contact" form (or the edit form) and submits it.
async function fillContact(page, { name, channel, address }, button) {
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Channel").selectOption(channel);
  await page.getByLabel("Address").fill(address);
  return submit(page, button);
}

// The rows of the deliveries table on a contact's page titled `title`.
const deliveryRows = (page, title) => page.locator("#deliveries tbody tr", { hasText: title });

// On a contact's page (which reloads itself while a delivery is under way):
// waits until the newest delivery titled `title` is no longer pending;
// returns its state and its row's text.
async function newestDelivery(page, title) {
  const deadline = Date.now() + 60_000;
  let seen = "nothing";
  for (;;) {
    try {
      const row = deliveryRows(page, title).first();
      const text = await row.textContent({ timeout: 2000 });
      seen = text;
      const state = (await row.locator(".badge").textContent({ timeout: 2000 })).trim();
      if (state === "sent" || state === "failed") return { state, text };
    } catch {
      // In the middle of a reload.
    }
    if (Date.now() > deadline) throw new Error(`"${title}" was not delivered in 60 s; last row: ${seen}`);
    await page.waitForTimeout(300);
  }
}

const browser = await launch();
try {
  const owner = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await logIn(owner, env("VIGIL_EMAIL"), env("VIGIL_PASSWORD"));

  step("no contacts yet");
  await nav(page, "Contacts").click();
  await page.waitForURL(`${base}/contacts`);
  await page.getByRole("heading", { name: "Contacts (0)" }).waitFor();
  await page.getByText("No contacts yet.").waitFor();
  await page.getByText("Add a contact first.").waitFor();
  assert.equal(await nav(page, "Contacts").getAttribute("aria-current"), "page");
  await checkPage(page, "contacts-empty");

  step("a bad email address is refused (422), with the input kept");
  const mail = { name: "Ops mail", channel: "email", address: "ops-at-acme" };
  assert.equal(await fillContact(page, mail, "Add contact"), 422);
  await page.getByRole("alert").filter({ hasText: "invalid email address" }).waitFor();
  assert.equal(await page.getByLabel("Name", { exact: true }).inputValue(), "Ops mail");
  assert.equal(await page.getByLabel("Address").inputValue(), "ops-at-acme");
  assert.equal(await page.getByLabel("Channel").inputValue(), "email");
  await checkPage(page, "contacts-refused");

  step("the email contact is added");
  assert.equal(await fillContact(page, { ...mail, address: mailTo }, "Add contact"), 200);
  assert.match(page.url(), /\/contacts\/[0-9a-f-]{36}\?done=added$/);
  const mailId = new URL(page.url()).pathname.split("/")[2];
  await page.getByRole("heading", { name: "Contact Ops mail" }).waitFor();
  await page.getByRole("status").filter({ hasText: "Contact added." }).waitFor();
  assert.equal(await page.locator("#contact-address").textContent(), mailTo);
  await page.getByText("Nothing was sent to this contact yet.").waitFor();

  step("a webhook URL that is not http(s) is refused; then the webhook contact is added");
  await page.goto(`${base}/contacts`);
  const hook = { name: "Ops hook", channel: "webhook", address: "ftp://hooks.example/x" };
  assert.equal(await fillContact(page, hook, "Add contact"), 422);
  await page.getByRole("alert").filter({ hasText: "the scheme must be http or https" }).waitFor();
  assert.equal(await page.getByLabel("Channel").inputValue(), "webhook");
  assert.equal(await page.getByLabel("Address").inputValue(), "ftp://hooks.example/x");
  assert.equal(await fillContact(page, { ...hook, address: hookUrl }, "Add contact"), 200);
  const hookId = new URL(page.url()).pathname.split("/")[2];
  await page.getByRole("heading", { name: "Contact Ops hook" }).waitFor();

  step("an unknown channel or a missing CSRF token is refused");
  const csrf = await csrfOf(page);
  assert.equal(await post(page, "/contacts", { csrf, name: "Pager", channel: "pager", address: mailTo }), 422);
  assert.equal(await post(page, "/contacts", { name: "Pager", channel: "email", address: mailTo }), 403);
  await page.goto(`${base}/contacts`);
  await page.getByRole("heading", { name: "Contacts (2)" }).waitFor();
  const rows = await contactsTable(page).locator("tbody tr").allTextContents();
  assert.equal(rows.length, 2, "Pager was not added");
  assert.match(rows[0], /Ops hook.*Webhook \(JSON POST\).*\/hook/);
  assert.match(rows[1], new RegExp(`Ops mail.*Email.*${mailTo}`));

  step("a rule without events is refused");
  await page.getByLabel("Contact", { exact: true }).selectOption({ label: "Ops hook" });
  await page.getByLabel("All events").uncheck();
  assert.equal(await submit(page, "Add rule"), 422);
  await page.getByRole("alert").filter({ hasText: "Pick at least one event" }).waitFor();

  step("rule for all agents: two events");
  assert.equal(await page.getByLabel("Contact", { exact: true }).inputValue(), hookId, "contact kept");
  await page.getByLabel("Service down").check();
  await page.getByLabel("Agent not communicating").check();
  assert.equal(await submit(page, "Add rule"), 200);
  await page.getByRole("status").filter({ hasText: "Rule added." }).waitFor();
  await page.getByRole("heading", { name: "Notification rules (1)" }).waitFor();
  await rulesTable(page)
    .locator("tr", { hasText: "Ops hook" })
    .filter({ hasText: "All agents" })
    .filter({ hasText: "Service down, Agent not communicating" })
    .waitFor();

  step("rule for one agent: a typed name matching two agents offers both");
  await page.getByLabel("Contact", { exact: true }).selectOption({ label: "Ops mail" });
  await page.getByLabel("One agent:").check();
  await page.getByLabel("Agent name, hostname or ID").fill("ALPHA");
  assert.equal(await submit(page, "Add rule"), 422);
  await page.getByRole("alert").filter({ hasText: "2 agents match “ALPHA”" }).waitFor();
  const choices = page.getByRole("group", { name: "Matching agents" });
  await choices.getByLabel(office.name).waitFor();
  await checkPage(page, "contacts-agent-choices");
  await choices.getByLabel(lab.name).check();
  assert.equal(await submit(page, "Add rule"), 200);
  await rulesTable(page)
    .locator("tr", { hasText: "Ops mail" })
    .filter({ has: page.getByRole("link", { name: lab.name }) })
    .filter({ hasText: "All events" })
    .waitFor();

  step("rule for one agent by its exact name, and an unknown agent");
  await page.getByLabel("Contact", { exact: true }).selectOption({ label: "Ops mail" });
  await page.getByLabel("One agent:").check();
  await page.getByLabel("Agent name, hostname or ID").fill("no-such-agent");
  assert.equal(await submit(page, "Add rule"), 422);
  await page.getByRole("alert").filter({ hasText: "No agent's name or hostname contains “no-such-agent”" }).waitFor();
  assert.equal(await page.getByLabel("Agent name, hostname or ID").inputValue(), "no-such-agent");
  assert.ok(await page.getByLabel("One agent:").isChecked(), "scope kept");
  await page.getByLabel("Agent name, hostname or ID").fill(office.name);
  await page.getByLabel("All events").uncheck();
  await page.getByLabel("Unauthorized port open").check();
  assert.equal(await submit(page, "Add rule"), 200);
  await page.getByRole("heading", { name: "Notification rules (3)" }).waitFor();
  const officeRule = rulesTable(page)
    .locator("tr", { has: page.getByRole("link", { name: office.name }) })
    .filter({ hasText: "Unauthorized port open" });
  await officeRule.waitFor();
  const officeLink = await officeRule.getByRole("link", { name: office.name }).getAttribute("href");
  assert.equal(officeLink, `/agents/${office.id}`);
  await checkPage(page, "contacts");

  step("send a test to the webhook contact: the delivery shows as sent");
  await contactsTable(page).getByRole("button", { name: "Send test notification to Ops hook" }).click();
  await page.waitForURL(`${base}/contacts/${hookId}?done=test`);
  await page.getByRole("status").filter({ hasText: "Test notification queued" }).waitFor();
  const hookDelivery = await newestDelivery(page, "Test notification for Ops hook");
  assert.equal(hookDelivery.state, "sent", hookDelivery.text);
  assert.equal(await deliveryRows(page, "Test notification").count(), 1);
  await checkPage(page, "contact-hook-sent");

  step("send a test to the email contact from its page: sent through SMTP");
  await page.goto(`${base}/contacts/${mailId}`);
  await page.getByRole("button", { name: "Send test notification to Ops mail" }).click();
  await page.waitForURL(`${base}/contacts/${mailId}?done=test`);
  const mailDelivery = await newestDelivery(page, "Test notification for Ops mail");
  assert.equal(mailDelivery.state, "sent", mailDelivery.text);
  assert.match(mailDelivery.text, /sent1/, "one attempt");
  // Nothing pending: the page no longer reloads itself.
  await page.reload();
  assert.equal(await page.locator("body").getAttribute("data-refresh"), null);
  await page.getByText("All events").first().waitFor();
  await checkPage(page, "contact-mail-sent");

  step("edit the email contact: a refused address keeps the input, then save");
  await page.getByRole("link", { name: "Edit contact" }).click();
  await page.waitForURL(`${base}/contacts/${mailId}/edit`);
  assert.equal(await page.getByLabel("Address").inputValue(), mailTo);
  assert.equal(await fillContact(page, { name: "Ops email", channel: "email", address: "not an address" }, "Save contact"), 422);
  await page.getByRole("alert").filter({ hasText: "invalid email address" }).waitFor();
  assert.equal(await page.getByLabel("Name", { exact: true }).inputValue(), "Ops email");
  await checkPage(page, "contact-edit-refused");
  assert.equal(await fillContact(page, { name: "Ops email", channel: "email", address: mailTo }, "Save contact"), 200);
  await page.waitForURL(`${base}/contacts/${mailId}?done=saved`);
  await page.getByRole("heading", { name: "Contact Ops email" }).waitFor();
  await page.getByRole("status").filter({ hasText: "Contact saved." }).waitFor();
  // The history stays with the contact.
  await deliveryRows(page, "Test notification for Ops mail").waitFor();

  step("delete a rule");
  // The address bar after a refused rule leads back to the list.
  await page.goto(`${base}/contacts/rules`);
  assert.equal(new URL(page.url()).pathname, "/contacts");
  await rulesTable(page).getByRole("button", { name: `Delete rule: Ops email, ${office.name}` }).click();
  await page.waitForURL(`${base}/contacts?done=rule-deleted#rules`);
  await page.getByRole("status").filter({ hasText: "Rule deleted." }).waitFor();
  await page.getByRole("heading", { name: "Notification rules (2)" }).waitFor();
  assert.equal(await rulesTable(page).getByRole("link", { name: office.name }).count(), 0);

  step("delete the webhook contact: its rule goes too");
  await page.goto(`${base}/contacts/${hookId}`);
  await page.getByRole("button", { name: "Delete contact" }).click();
  await page.waitForURL(`${base}/contacts?done=deleted`);
  await page.getByRole("status").filter({ hasText: "Contact deleted." }).waitFor();
  await page.getByRole("heading", { name: "Contacts (1)" }).waitFor();
  await page.getByRole("heading", { name: "Notification rules (1)" }).waitFor();
  assert.equal(await rulesTable(page).getByText("Ops hook").count(), 0);
  assert.equal((await page.goto(`${base}/contacts/${hookId}`)).status(), 404);
  assert.equal((await page.goto(`${base}/contacts/not-an-id`)).status(), 404);
  await page.goto(`${base}/contacts`);
  const ruleId = await page.locator('form[action^="/contacts/rules/"]').first().getAttribute("action");

  step("viewer: contacts readable, no write forms, forced POSTs 403");
  const viewerContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const viewer = await logIn(viewerContext, env("VIGIL_VIEWER_EMAIL"), env("VIGIL_VIEWER_PASSWORD"));
  const writeForms = () => viewer.locator('form[method="post"]:not([action="/logout"])').count();
  await nav(viewer, "Contacts").click();
  await viewer.getByText("Viewers may only read").first().waitFor();
  await contactsTable(viewer).getByRole("link", { name: "Ops email" }).waitFor();
  await rulesTable(viewer).getByRole("link", { name: lab.name }).waitFor();
  assert.equal(await writeForms(), 0, "no forms on /contacts");
  assert.equal(await viewer.getByRole("button", { name: /Send test notification/ }).count(), 0);
  await checkPage(viewer, "contacts-viewer");
  await viewer.goto(`${base}/contacts/${mailId}`);
  await viewer.locator("#deliveries tbody tr").first().waitFor();
  assert.equal(await writeForms(), 0, "no forms on a contact's page");
  assert.equal(await viewer.getByRole("link", { name: "Edit contact" }).count(), 0);
  await checkPage(viewer, "contact-viewer");
  assert.equal((await viewer.goto(`${base}/contacts/${mailId}/edit`)).status(), 403);
  await viewer.goto(`${base}/contacts`);
  const viewerCsrf = await csrfOf(viewer);
  for (const [path, fields] of [
    ["/contacts", { name: "V", channel: "email", address: "v@acme.test" }],
    [`/contacts/${mailId}/edit`, { name: "V", channel: "email", address: "v@acme.test" }],
    [`/contacts/${mailId}/test`, {}],
    [`/contacts/${mailId}/delete`, {}],
    ["/contacts/rules", { contact: mailId, scope: "all", event: "*" }],
    [ruleId, {}],
  ]) {
    assert.equal(await post(viewer, path, { ...fields, csrf: viewerCsrf }), 403, path);
  }
  await page.goto(`${base}/contacts/${mailId}`);
  assert.equal(await deliveryRows(page, "Test notification").count(), 1, "the viewer queued no test");
  await page.goto(`${base}/contacts`);
  await page.getByRole("heading", { name: "Contacts (1)" }).waitFor();
  await page.getByRole("heading", { name: "Notification rules (1)" }).waitFor();
  console.log("contacts browser test passed");
} finally {
  await browser.close();
}
