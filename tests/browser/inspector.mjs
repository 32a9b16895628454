// Drives the MCP Inspector web UI (2.12) in Debian's headless Chromium, as a user would, for
// tests/integration/browser.rs: adds the gateway as a Streamable HTTP server, connects (logging
// in at the identity provider when the gateway asks for OAuth), lists the tools, runs some, and
// opens the broker's /status page. Prints one JSON line with what the pages showed; the Rust test
// makes the assertions. Every wait is for a page state (no fixed sleeps); on failure it saves a
// screenshot and names it in its error.
//
// node tests/browser/inspector.mjs '<json>' where the JSON has:
//   playwright     path of the playwright-core package (installed by scripts/install-tools.sh)
//   chromium       the browser executable (/usr/bin/chromium)
//   inspectorUrl   the Inspector's URL with its API token
//   gatewayUrl     the gateway's /mcp URL, added as a server
//   statusUrl      the broker's /status page
//   outDir         where screenshots and the browser profile go
//   login          {username, password} to log in with at the identity provider, or null
//   calls          [{tool, args: {name: value}, expect: "text the result must show"}]
//   docsScreenshot where to save a screenshot (the tool list and the first call's result) for the
//                  docs, or null

import fs from 'node:fs';
import path from 'node:path';

const cfg = JSON.parse(process.argv[2]);
const { chromium } = await import(path.join(cfg.playwright, 'index.mjs'));

const SERVER_ID = 'mcp-gateway';
const TIMEOUT_MS = 30_000;
fs.mkdirSync(cfg.outDir, { recursive: true });
const profile = fs.mkdtempSync(path.join(cfg.outDir, 'profile-'));

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: cfg.chromium,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
ctx.setDefaultTimeout(TIMEOUT_MS);
const page = ctx.pages()[0] ?? (await ctx.newPage());
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));

let step = 'start';
const out = { steps: [], tools: [], results: {}, protocol: null, status: null, loggedIn: false };
const mark = (s) => {
  step = s;
  out.steps.push(s);
};

try {
  mark('open the Inspector');
  await page.goto(cfg.inspectorUrl);
  await page.getByRole('button', { name: 'Add Servers' }).waitFor();

  mark('add the gateway (Add Servers → Add manually)');
  await page.getByRole('button', { name: 'Add Servers' }).click();
  await page.getByRole('menuitem', { name: '+ Add manually' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Server ID').fill(SERVER_ID);
  await dialog.getByLabel('Transport').click();
  await page.getByRole('option', { name: 'streamable-http' }).click();
  await dialog.getByLabel('URL').fill(cfg.gatewayUrl);
  await dialog.getByRole('button', { name: 'Add' }).click();
  await dialog.waitFor({ state: 'hidden' });

  mark('connect (the switch on the server card)');
  // The visible track covers the switch's input: the click goes to the input itself.
  await page.getByRole('switch', { name: `Connect or disconnect "${SERVER_ID}"` }).check({ force: true });
  const connected = page.getByText('Connected', { exact: true });

  if (cfg.login) {
    mark('log in at the identity provider');
    const username = page.getByLabel('Username');
    await username.or(connected).first().waitFor();
    if (!(await username.isVisible())) throw new Error('connected without a login: the gateway asked for no token');
    out.loginPage = page.url().split('?')[0];
    await username.fill(cfg.login.username);
    await page.getByLabel('Password').fill(cfg.login.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    out.loggedIn = true;
  }

  mark('wait until connected');
  await connected.waitFor();
  const protocol = page.getByText(/^MCP \d{4}-\d{2}-\d{2}$/);
  await protocol.waitFor();
  out.protocol = await protocol.innerText();

  mark('list the tools (the Tools tab)');
  await page.locator('header').getByText('Tools', { exact: true }).click();
  const toolButtons = page.locator('button.list-item');
  await toolButtons.first().waitFor();
  // Each entry shows the title, then the name.
  out.tools = await toolButtons.evaluateAll((bs) =>
    bs.map((b) => {
      const p = b.querySelectorAll('p');
      return p.length ? p[p.length - 1].innerText.trim() : b.innerText.trim();
    }),
  );
  const results = page.locator('.mantine-Card-root').filter({ has: page.getByRole('heading', { name: 'Results' }) });
  for (const call of cfg.calls) {
    mark(`run ${call.tool}`);
    await toolButtons.filter({ has: page.getByText(call.tool, { exact: true }) }).click();
    for (const [name, value] of Object.entries(call.args ?? {})) {
      await page.getByRole('textbox', { name, exact: true }).fill(String(value));
    }
    await page.getByRole('button', { name: 'Execute Tool' }).click();
    await results.getByText(call.expect).first().waitFor();
    out.results[call.tool] = await results.innerText();
    if (cfg.docsScreenshot && call === cfg.calls[0]) {
      // The server list, tools and result; not the log sidebar (keeps the PNG small).
      await page.screenshot({ path: cfg.docsScreenshot, clip: { x: 0, y: 0, width: 840, height: 800 } });
    }
    await page.getByRole('button', { name: 'Close results' }).click();
    await results.waitFor({ state: 'hidden' });
  }

  mark('open the status page');
  await page.goto(cfg.statusUrl);
  await page.locator('table').waitFor();
  out.status = {
    title: await page.locator('h1').innerText(),
    summary: await page.locator('p').first().innerText(),
    rows: await page.locator('table tr').evaluateAll((trs) =>
      trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText.trim())),
    ),
  };
  out.ok = true;
} catch (e) {
  const shot = path.join(cfg.outDir, 'failure.png');
  await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
  out.ok = false;
  out.error = `${step}: ${e.message.split('\n')[0]}`;
  out.screenshot = shot;
  out.url = page.url();
  out.pageText = (await page.locator('body').innerText().catch(() => '')).slice(0, 4000);
}
out.pageErrors = pageErrors;
await ctx.close();
fs.rmSync(profile, { recursive: true, force: true });
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
