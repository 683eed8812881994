// The browser test's driver (tests/browser.rs): bundles the page, then opens it in headless
// Chromium and reports what the page wrote.
//
//   node browser.mjs --bundle DIR
//       esbuild bundles page/app.mjs (connect-web, @zitadel/proto) into DIR/app.js (ESM, for
//       browsers) and copies page/index.html to DIR.
//   node browser.mjs URL...
//       Opens each URL in Debian's Chromium (/usr/bin/chromium, driven by playwright-core, which
//       cannot download a browser of its own here), waits up to PAGE_DEADLINE_MS for
//       <pre id="result" data-done>, and prints one JSON line:
//         {"ok":true,"pages":[{"url","result":<the page's JSON>,"console":[…],"failedRequests":[…]}]}
//       "console" holds the page's console messages and uncaught errors: Chromium reports a CORS
//       refusal there ("… has been blocked by CORS policy: …"), which page code cannot see.
//       Whether a page's result is the expected one is for the caller to judge; the exit status
//       is non-zero only when the driver itself failed (no browser, no result by the deadline).
//
// tests/interop/setup installs Chromium and node_modules.
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = "/usr/bin/chromium";
const LAUNCH_DEADLINE_MS = 60_000;
const PAGE_DEADLINE_MS = 60_000;

async function bundle(outDir) {
  const esbuild = await import("esbuild");
  await mkdir(outDir, { recursive: true });
  await esbuild.build({
    entryPoints: [join(here, "page", "app.mjs")],
    outfile: join(outDir, "app.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    logLevel: "warning",
  });
  await copyFile(join(here, "page", "index.html"), join(outDir, "index.html"));
  return { ok: true, bundled: outDir };
}

async function drive(urls) {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: LAUNCH_DEADLINE_MS,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
  try {
    const pages = [];
    for (const url of urls) {
      // A fresh context per page: no preflight cache or anything else shared between origins.
      const context = await browser.newContext();
      const page = await context.newPage();
      const messages = [];
      const failedRequests = [];
      page.on("console", (msg) => messages.push({ type: msg.type(), text: msg.text() }));
      page.on("pageerror", (err) => messages.push({ type: "pageerror", text: String(err) }));
      page.on("requestfailed", (req) =>
        failedRequests.push({
          method: req.method(),
          url: req.url(),
          failure: req.failure()?.errorText ?? null,
        }),
      );
      const shown = { url: url.replace(/token=[^&]*/, "token=…"), console: messages, failedRequests };
      try {
        await page.goto(url, { timeout: PAGE_DEADLINE_MS });
        await page.waitForSelector("#result[data-done]", {
          state: "attached",
          timeout: PAGE_DEADLINE_MS,
        });
        shown.result = JSON.parse(await page.textContent("#result"));
      } catch (err) {
        throw new Error(
          `${shown.url}: no result within ${PAGE_DEADLINE_MS} ms: ${err?.message ?? err}\n` +
            `console: ${JSON.stringify(messages)}\nfailed requests: ${JSON.stringify(failedRequests)}`,
        );
      } finally {
        await context.close();
      }
      pages.push(shown);
    }
    return { ok: true, browser: `chromium ${browser.version()}`, pages };
  } finally {
    await browser.close();
  }
}

async function main(args) {
  if (args[0] === "--bundle" && args.length === 2) return bundle(args[1]);
  if (args.length > 0 && !args[0].startsWith("-")) return drive(args);
  throw new Error("usage: node browser.mjs --bundle DIR | node browser.mjs URL...");
}

try {
  process.stdout.write(`${JSON.stringify(await main(process.argv.slice(2)))}\n`);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(err?.stack ?? err) })}\n`);
  process.exitCode = 1;
}
