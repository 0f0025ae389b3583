// Drives mynah's dashboard in headless chromium: start a run from the form, watch the numbers
// move, change the user count, take a screenshot of the running dashboard, stop, download the
// HTML report. Run by crates/mynah/tests/web.rs (MYNAH_BROWSER=1) with:
//   DASHBOARD_URL  the page, e.g. http://127.0.0.1:8089/
//   SCREENSHOT     where to save the PNG of the running dashboard
//   DOWNLOAD       where to save the downloaded HTML report
//   CHROMIUM       the browser binary (default /usr/bin/chromium)
// Every wait is bounded; any failure exits non-zero with the reason.
import { chromium } from "playwright-core";

const url = process.env.DASHBOARD_URL;
const shot = process.env.SCREENSHOT;
const download = process.env.DOWNLOAD;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 30000;

function number(text) {
  return Number(String(text).replace(/[^0-9.]/g, ""));
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start. The others keep
  // chromium from reaching out to the network (closed on CI machines) at every start.
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: "load" });

  // The form is prefilled from the scenario; start with 2 users.
  await page.waitForSelector("#start-panel:not([hidden])", { timeout: WAIT });
  await page.fill("#users-input", "2");
  await page.fill("#spawn-rate", "50");
  await page.fill("#run-time", "");
  await page.click("#start");
  await page.waitForFunction(() => document.getElementById("phase").textContent === "running", null, { timeout: WAIT });

  // The numbers move.
  await page.waitForFunction(() => Number(document.getElementById("total-requests").textContent.replace(/,/g, "")) > 0, null, { timeout: WAIT });
  const first = number(await page.textContent("#total-requests"));
  await page.waitForFunction((n) => Number(document.getElementById("total-requests").textContent.replace(/,/g, "")) > n, first, { timeout: WAIT });
  const rows = await page.locator("#stats-body tr").count();
  if (rows < 1) throw new Error("no endpoint rows in the statistics table");

  // Change the user count while it runs.
  await page.fill("#edit-users", "4");
  await page.fill("#edit-rate", "50");
  await page.click("#apply-users");
  await page.waitForFunction(() => document.getElementById("users").textContent.trim() === "4", null, { timeout: WAIT });

  // Sorting by a column reorders without losing rows.
  await page.click("#stats-table th[data-key=name]");
  if ((await page.locator("#stats-body tr").count()) !== rows) throw new Error("rows lost on sort");

  // Let the charts gather a few points, then the screenshot of the running dashboard: the
  // statistics on top, then the charts tab.
  await page.click(".tabs button[data-tab=charts]");
  await page.waitForTimeout(3000);
  await page.click(".tabs button[data-tab=stats]");
  await page.screenshot({ path: shot, fullPage: true });
  const chartsShot = shot.replace(/\.png$/, "-charts.png");
  await page.click(".tabs button[data-tab=charts]");
  await page.screenshot({ path: chartsShot, fullPage: true });
  await page.click(".tabs button[data-tab=stats]");

  // Stop, then download the HTML report.
  await page.click("#stop");
  await page.waitForFunction(() => document.getElementById("phase").textContent === "finished", null, { timeout: WAIT });
  await page.click(".tabs button[data-tab=downloads]");
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), page.click("#download-report")]);
  await dl.saveAs(download);

  if (errors.length) throw new Error("errors on the page: " + errors.join("; "));
  console.log(`dashboard ok: ${rows} endpoint rows, ${number(await page.textContent("#total-requests"))} requests, screenshot ${shot}`);
} finally {
  await browser.close();
}
