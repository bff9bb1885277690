// Session expiry and the login form's CSRF protection.
import assert from "node:assert/strict";
import { base, env, launch, logIn, step } from "./harness.mjs";

const lifetime = Number(env("VIGIL_LIFETIME_SECS"));

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });

  step("a login POST without the form's token (another site's form) is refused");
  const probe = await context.newPage();
  await probe.goto(`${base}/login`);
  const forged = await probe.evaluate(async ([email, password]) => {
    const r = await fetch("/login", {
      method: "POST",
      body: new URLSearchParams({ email, password }),
      redirect: "manual",
    });
    return r.status;
  }, [env("VIGIL_EMAIL"), env("VIGIL_PASSWORD")]);
  assert.equal(forged, 403, "a login without the token");
  const reloaded = await probe.goto(`${base}/`);
  assert.equal(new URL(probe.url()).pathname, "/login", "no session was made");
  assert.equal(reloaded.status(), 200);
  await probe.close();

  step("log in; the session cookie is HttpOnly and SameSite=Strict");
  const page = await logIn(context, env("VIGIL_EMAIL"), env("VIGIL_PASSWORD"));
  // The session started before logIn returned; its end is counted in whole seconds.
  const started = Date.now();
  const cookie = (await context.cookies()).find((c) => c.name === "vigil_session");
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict", JSON.stringify(cookie));
  await page.goto(`${base}/agents?health=abandoned`);
  await page.getByRole("heading", { name: "Agents" }).waitFor();

  step(`after ${lifetime} s the session has ended: log in again, back to the same page`);
  const wait = started + lifetime * 1000 + 2000 - Date.now();
  if (wait > 0) await page.waitForTimeout(wait);
  await page.reload();
  const url = new URL(page.url());
  assert.equal(url.pathname, "/login");
  assert.equal(url.searchParams.get("expired"), "1");
  assert.equal(url.searchParams.get("next"), "/agents?health=abandoned");
  await page.getByText("Your session has ended; please log in again.").waitFor();
  await page.getByLabel("Email").fill(env("VIGIL_EMAIL"));
  await page.getByLabel("Password").fill(env("VIGIL_PASSWORD"));
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(`${base}/agents?health=abandoned`);
  assert.ok(await page.getByLabel("abandoned").isChecked());

  step("a wrong password says so and keeps the email");
  const other = await browser.newContext();
  const again = await other.newPage();
  await again.goto(`${base}/login?next=//evil.example/`);
  await again.getByLabel("Email").fill(env("VIGIL_EMAIL"));
  await again.getByLabel("Password").fill("wrong password");
  await again.getByRole("button", { name: "Log in" }).click();
  await again.getByText("Wrong email or password.").waitFor();
  assert.equal(await again.getByLabel("Email").inputValue(), env("VIGIL_EMAIL"));
  step("a next= that leaves the site is ignored");
  await again.getByLabel("Password").fill(env("VIGIL_PASSWORD"));
  await again.getByRole("button", { name: "Log in" }).click();
  await again.waitForURL(`${base}/`);
  console.log("session browser test passed");
} finally {
  await browser.close();
}
