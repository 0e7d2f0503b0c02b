// The stack test's browser phases: Debian's Chromium driven by Playwright,
// from ft-client through the load balancer, trusting the generated CA, doing
// what a person does (tests/stack/checks.py runs this).
//
//   node browser.mjs SCENARIO      front | wordpress | verify | phpmyadmin
//
// Environment: LB_IP, SECRETS_DIR, STACK_WORK. Every scenario prints
// PASS/FAIL lines and exits non-zero on a failure; a screenshot of every step
// is kept in $STACK_WORK/browser/. On every page it watches for failed
// requests (an error or a 4xx/5xx answer), console errors and mixed content;
// ALLOWED lists what may happen anyway, and why.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

const LB = process.env.LB_IP;
const SECRETS = process.env.SECRETS_DIR;
const WORK = process.env.STACK_WORK;
const SHOTS = path.join(WORK, 'browser');
const RECORD = path.join(WORK, 'browser.json');
const WORDPRESS = `https://${LB}:5050`;

// Problems that are no fault of the stack, each with its reason.
const ALLOWED = [
  // WordPress's dashboard asks its own server for the WordPress.org events
  // and news feed; the server has no internet here, and says so with a 200.
  { console: /dashboard_widget|community-events/, why: 'WordPress.org feeds are out of reach offline' },
  // Gravatar's avatars (wp-admin's toolbar and lists) and WordPress.org's
  // images (the block editor's welcome guide) come from the internet, which
  // a user's browser reaches and the test's client does not.
  { url: /^https:\/\/(secure\.gravatar\.com|s\.w\.org)\//, why: 'third-party images, out of reach offline' },
  // wp-admin asks once whether the server compresses scripts; WordPress
  // answers that test only to its administrators, others get 400.
  { url: /\/wp-admin\/admin-ajax\.php\?action=wp-compression-test/, status: 400, why: "WordPress's own check, for administrators" },
];

const secret = (...p) => fs.readFileSync(path.join(SECRETS, ...p), 'utf8').trim();
const failures = [];
const say = (line) => console.log(line);

function allowed(problem) {
  return ALLOWED.some((a) =>
    (a.url && problem.url && a.url.test(problem.url) && (!a.status || a.status === problem.status)) ||
    (a.console && problem.text && a.console.test(problem.text)));
}

// A browser with its own profile (HOME) whose NSS database trusts the CA,
// as a person who imported it would have.
async function browser() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ft-browser-'));
  const nss = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(nss, { recursive: true });
  execFileSync('certutil', ['-d', `sql:${nss}`, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', `sql:${nss}`, '-A', '-t', 'C,,', '-n', 'ft_services CA',
    '-i', path.join(SECRETS, 'ft-tls', 'ca.crt')]);
  const b = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    env: { ...process.env, HOME: home },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
  return { b, home };
}

// A page whose problems are collected into `problems`.
async function watchedPage(context, problems) {
  const page = await context.newPage();
  page.on('requestfailed', (r) => {
    const reason = r.failure()?.errorText ?? '';
    // A navigation or download the page itself abandoned is no failure.
    if (reason !== 'net::ERR_ABORTED') problems.push({ url: r.url(), text: `request failed: ${reason}` });
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push({ url: r.url(), status: r.status(), text: `answered ${r.status()}` });
  });
  page.on('console', (m) => {
    // "Failed to load resource" repeats a failed request or answer, reported above with its URL.
    if (/^Failed to load resource/.test(m.text())) return;
    if (m.type() === 'error' || /Mixed Content/.test(m.text())) problems.push({ text: `console: ${m.text()}` });
  });
  page.on('pageerror', (e) => problems.push({ text: `page error: ${e.message}` }));
  page.on('request', (r) => {
    if (r.url().startsWith('http://') && page.url().startsWith('https://')) {
      problems.push({ url: r.url(), text: 'mixed content: plain HTTP from an HTTPS page' });
    }
  });
  return page;
}

// One step: run it, keep a screenshot, report what went wrong on its pages.
let stepNo = 0;
async function step(name, page, problems, fn) {
  const started = Date.now();
  problems.length = 0;
  let detail = '';
  let error = null;
  try {
    detail = (await fn()) ?? '';
  } catch (e) {
    error = e;
  }
  stepNo += 1;
  const shot = path.join(SHOTS, `${process.argv[2]}-${String(stepNo).padStart(2, '0')}-${name.replace(/\W+/g, '_')}.png`);
  await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
  const unexpected = problems.filter((p) => !allowed(p));
  const took = ((Date.now() - started) / 1000).toFixed(1);
  if (error || unexpected.length) {
    const why = [error && String(error.message ?? error).split('\n')[0],
      ...unexpected.map((p) => `${p.text}${p.url ? ` (${p.url})` : ''}`)].filter(Boolean);
    failures.push(name);
    say(`FAIL  browser ${name} (${took} s): ${why.join('; ')} [screenshot ${shot}]`);
  } else {
    say(`PASS  browser ${name} (${took} s) ${detail}`);
  }
}

// A PNG of random pixels (so that its bytes are this run's own).
function randomPng(width, height) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  const noise = crypto.randomBytes(raw.length);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0; // filter: none
    noise.copy(raw, y * (width * 3 + 1) + 1, y * (width * 3 + 1) + 1, (y + 1) * (width * 3 + 1));
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// A part of a step, named in the error when it fails.
async function doing(what, fn) {
  try {
    await fn();
  } catch (e) {
    throw new Error(`${what}: ${String(e.message ?? e).split('\n')[0]}`);
  }
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

// The sha256 of what `url` serves, fetched by the page itself.
async function pageSha256(page, url) {
  return page.evaluate(async (u) => {
    const r = await fetch(u, { cache: 'no-store' });
    const digest = await crypto.subtle.digest('SHA-256', await r.arrayBuffer());
    return Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, '0')).join('');
  }, url);
}

function wordpressUser(role) {
  const line = secret('ft-wordpress', 'users').split('\n').find((l) => l.split(':')[1] === role);
  const [login, , , password] = line.split(':');
  return { login, password };
}

async function wpLogin(page, login, password) {
  await page.goto(`${WORDPRESS}/wp-login.php`);
  await page.fill('#user_login', login);
  await page.fill('#user_pass', password);
  await Promise.all([page.waitForURL(/\/wp-admin\//), page.click('#wp-submit')]);
}

// --- scenarios ---------------------------------------------------------------------

const scenarios = {
  // The front page, and every link it has to a service that runs here.
  async front(context, problems) {
    const page = await watchedPage(context, problems);
    await step('front-page', page, problems, async () => {
      await page.goto(`https://${LB}/`);
      const title = await page.title();
      if (!title.includes(LB)) throw new Error(`title ${title}`);
      const text = await page.textContent('body');
      for (const needed of ['./setup.sh credentials', 'ca.crt', `ft@${LB}`, 'port 21', 'explicit TLS']) {
        if (!text.includes(needed)) throw new Error(`the front page does not say ${needed}`);
      }
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      await page.setViewportSize({ width: 390, height: 800 });
      const narrow = await page.evaluate(() => document.documentElement.scrollWidth);
      if (narrow > 390) throw new Error(`wider than a phone: ${narrow} px`);
      return `"${title}", readable at 390 px (${width} px wide otherwise)`;
    });
    const followed = [];
    for (const [link, expect] of [
      ['#wordpress', /:5050\//], ['a[href="/wordpress"]', /:5050\//],
      ['#phpmyadmin', /:5000\//], ['a[href="/phpmyadmin/"]', /\/phpmyadmin\//],
      ['a[href="/ca.crt"]', null],
    ]) {
      await step(`front-link ${link}`, page, problems, async () => {
        await page.goto(`https://${LB}/`);
        if (expect === null) {
          const href = await page.getAttribute(link, 'href');
          const r = await page.request.get(new URL(href, page.url()).toString(), { ignoreHTTPSErrors: true });
          const body = await r.text();
          if (r.status() !== 200 || body.trim() !== secret('ft-tls', 'ca.crt')) throw new Error(`/ca.crt: ${r.status()}`);
          followed.push(link);
          return 'serves the CA certificate';
        }
        await Promise.all([page.waitForLoadState('load'), page.click(link)]);
        if (!expect.test(page.url())) throw new Error(`led to ${page.url()}`);
        followed.push(link);
        return `-> ${page.url()}`;
      });
    }
    // Grafana's link is there; grafana-server does not run in this test.
    await step('front-link #grafana', page, problems, async () => {
      await page.goto(`https://${LB}/`);
      const href = await page.getAttribute('#grafana', 'href');
      if (href !== `https://${LB}:3000/`) throw new Error(`Grafana's link is ${href}`);
      return `${href} (not followed: grafana-server does not run here)`;
    });
  },

  // wp-admin as the administrator and as an author; the author uploads an
  // image through the Media Library's upload form and publishes a post with
  // it; a visitor sees the post with the image.
  async wordpress(context, problems) {
    const admin = { login: 'admin', password: secret('ft-wordpress', 'admin-password') };
    const author = wordpressUser('author');
    const image = randomPng(320, 240);
    const stamp = Date.now().toString(36);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ft-upload-')), `ft-photo-${stamp}.png`);
    fs.writeFileSync(file, image);
    const record = { image_sha256: sha256(image), image_name: path.basename(file) };

    let page = await watchedPage(context, problems);
    await step('wordpress-site', page, problems, async () => {
      await page.goto(`https://${LB}/`);
      await Promise.all([page.waitForURL(/:5050\//), page.click('a[href="/wordpress"]')]);
      const h = await page.locator('body').textContent();
      return `the site at ${page.url()} (${h.length} characters)`;
    });
    await step('wp-admin as admin', page, problems, async () => {
      await wpLogin(page, admin.login, admin.password);
      await page.waitForSelector('#wpadminbar');
      return 'the dashboard';
    });
    await context.clearCookies();

    page = await watchedPage(context, problems);
    await step('wp-admin as author', page, problems, async () => {
      await wpLogin(page, author.login, author.password);
      return `${author.login} in wp-admin`;
    });
    await step('media upload', page, problems, async () => {
      await page.goto(`${WORDPRESS}/wp-admin/media-new.php`);
      await page.setInputFiles('#plupload-upload-ui input[type=file], input[type=file]', file);
      const item = page.locator('.media-item').filter({ hasText: /Edit|Copy URL/ }).first();
      await item.waitFor({ timeout: 60000 });
      const error = await page.locator('.media-item .error-div, .upload-error').count();
      if (error) throw new Error(await page.locator('.media-item .error-div, .upload-error').first().textContent());
      return `${record.image_name} (${image.length} bytes) uploaded`;
    });
    await step('post with the image', page, problems, async () => {
      await page.goto(`${WORDPRESS}/wp-admin/post-new.php`);
      // The editor's welcome guide, on a first visit.
      const guide = page.getByRole('dialog').getByRole('button', { name: 'Close' });
      if (await guide.isVisible({ timeout: 5000 }).catch(() => false)) await guide.click();
      const canvas = page.frameLocator('iframe[name="editor-canvas"]');
      const title = `A photo ${stamp}`;
      await doing('the title', async () => {
        await canvas.getByRole('textbox', { name: 'Add title' }).fill(title);
        await canvas.getByRole('textbox', { name: 'Add title' }).press('Enter');
      });
      await doing('an image block', async () => {
        await page.keyboard.type('/image');
        await page.keyboard.press('Enter');
        await canvas.locator('.wp-block-image .components-placeholder').waitFor();
      });
      await doing("the Media Library's image", async () => {
        await canvas.getByRole('button', { name: 'Media Library' }).click();
        const modal = page.locator('.media-modal:visible');
        await modal.locator(`li.attachment[aria-label="ft-photo-${stamp}"]`).click();
        await modal.getByRole('button', { name: 'Select', exact: true }).click();
        await canvas.locator('figure.wp-block-image img').waitFor();
      });
      await doing('publishing', async () => {
        await page.getByRole('button', { name: 'Publish', exact: true }).click();
        await page.locator('.editor-post-publish-panel').getByRole('button', { name: 'Publish', exact: true }).click();
        const view = page.locator('.post-publish-panel__postpublish').getByRole('link', { name: /View Post/ }).first();
        await view.waitFor({ timeout: 30000 });
        record.post_url = await view.getAttribute('href');
      });
      record.title = title;
      return `"${title}" published at ${record.post_url}`;
    });
    await context.clearCookies();

    page = await watchedPage(context, problems);
    await step('visitor sees the post', page, problems, async () => {
      const seen = await visitPost(page, record);
      Object.assign(record, seen);
      return `the image ${seen.image_url} shown (${seen.width}x${seen.height}), its bytes the upload's`;
    });
    fs.writeFileSync(RECORD, JSON.stringify(record, null, 1));
  },

  // A visitor sees the post of `wordpress` with its image, byte for byte.
  async verify(context, problems) {
    const record = JSON.parse(fs.readFileSync(RECORD, 'utf8'));
    const page = await watchedPage(context, problems);
    await step('the post and its image again', page, problems, async () => {
      const seen = await visitPost(page, record);
      return `"${record.title}" with ${seen.image_url}: sha256 as uploaded`;
    });
  },

  // phpMyAdmin on 5000 and under /phpmyadmin/: log in, open wp_posts, run a
  // query, export a table, import a small SQL file.
  async phpmyadmin(context, problems, newContext) {
    for (const base of [`https://${LB}:5000/`, `https://${LB}/phpmyadmin/`]) {
      // A browser of its own for each address: cookies do not tell ports apart.
      const page = await watchedPage(await newContext(), problems);
      const where = base.includes(':5000') ? ':5000' : '/phpmyadmin/';
      await step(`phpmyadmin ${where} login`, page, problems, async () => {
        await page.goto(base);
        await page.fill('#input_username', 'phpmyadmin');
        await page.fill('#input_password', secret('ft-mysql', 'phpmyadmin-password'));
        await Promise.all([page.waitForSelector('#pma_navigation'), page.click('#input_go')]);
        return `logged in at ${page.url()}`;
      });
      await step(`phpmyadmin ${where} wp_posts`, page, problems, async () => {
        await page.goto(`${base}index.php?route=/sql&db=wordpress&table=wp_posts&pos=0`);
        await page.locator('table.table_results').waitFor();
        const rows = await page.locator('table.table_results tbody tr').count();
        if (rows < 1) throw new Error('wp_posts shows no row');
        return `wordpress.wp_posts: ${rows} rows shown`;
      });
      await step(`phpmyadmin ${where} query`, page, problems, async () => {
        await page.goto(`${base}index.php?route=/table/sql&db=wordpress&table=wp_posts`);
        // The query box is CodeMirror, set up once the page's scripts ran:
        // focused, its text selected, then typed over.
        // The query box (phpMyAdmin's console at the bottom is another
        // CodeMirror): clicked into, its text selected and typed over; tried
        // again while phpMyAdmin may still be replacing the page's content,
        // 15 s at most.
        const query = "SELECT post_title FROM wp_posts WHERE post_status = 'publish'";
        const box = '#sqlqueryform .CodeMirror';
        const deadline = Date.now() + 15000;
        let typed = '';
        while (typed !== query && Date.now() < deadline) {
          await page.locator(box).click();
          await page.keyboard.press('Control+A');
          await page.keyboard.type(query);
          typed = await page.evaluate((b) => document.querySelector(b)?.CodeMirror?.getValue() ?? '', box);
        }
        if (typed !== query) throw new Error(`the query box holds ${JSON.stringify(typed)}`);
        await page.click('#button_submit_query');
        await page.locator('.result_query').first().waitFor();
        const message = await page.locator('.result_query').first().textContent();
        if (!/Showing rows|returned/.test(message)) throw new Error(message.trim().slice(0, 200));
        return message.trim().split('\n')[0].slice(0, 80);
      });
      await step(`phpmyadmin ${where} export`, page, problems, async () => {
        await page.goto(`${base}index.php?route=/table/export&db=wordpress&table=wp_options`);
        const [download] = await Promise.all([page.waitForEvent('download'), page.click('#buttonGo')]);
        const dumped = fs.readFileSync(await download.path(), 'utf8');
        // The rows, as SQL. (Debian's phpMyAdmin 5.2.2 with trixie's Twig
        // drops the quick export's structure options; README, version table.)
        if (!/INSERT INTO `?wp_options`?/.test(dumped) || !dumped.includes("'siteurl'")) {
          throw new Error(`the export holds no rows of wp_options: ${JSON.stringify(dumped.slice(0, 1500))}`);
        }
        return `${download.suggestedFilename()}: ${dumped.length} bytes of SQL`;
      });
      await step(`phpmyadmin ${where} import`, page, problems, async () => {
        const table = `ft_browser_${Date.now().toString(36)}`;
        const sql = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ft-sql-')), `${table}.sql`);
        fs.writeFileSync(sql, `CREATE DATABASE IF NOT EXISTS ft_browser;\nUSE ft_browser;\n` +
          `CREATE TABLE ${table} (id INT PRIMARY KEY, word VARCHAR(20));\n` +
          `INSERT INTO ${table} VALUES (1, 'imported'), (2, 'through'), (3, 'phpMyAdmin');\n`);
        await page.goto(`${base}index.php?route=/server/import`);
        await page.setInputFiles('#input_import_file', sql);
        await page.click('#buttonGo');
        await page.locator('.alert-success, .alert-danger, .error').first().waitFor({ timeout: 60000 });
        const ok = await page.locator('.alert-success').first().textContent().catch(() => '');
        if (!/successfully finished/.test(ok ?? '')) {
          throw new Error(await page.locator('.alert-danger, .error').first().textContent());
        }
        await page.goto(`${base}index.php?route=/sql&db=ft_browser&table=${table}&pos=0`);
        const rows = await page.locator('table.table_results tbody tr').count();
        if (rows !== 3) throw new Error(`${table} shows ${rows} rows after the import`);
        return `${table}: 3 rows imported`;
      });
    }
  },
};

// A visitor opens the post: the image is shown, and serves the uploaded bytes.
async function visitPost(page, record) {
  await page.goto(record.post_url);
  const img = page.locator('figure.wp-block-image img').first();
  await img.waitFor();
  const { src, width, height } = await img.evaluate((e) => ({ src: e.currentSrc || e.src, width: e.naturalWidth, height: e.naturalHeight }));
  if (!width) throw new Error(`the image ${src} is not shown`);
  const digest = await pageSha256(page, src);
  if (digest !== record.image_sha256) throw new Error(`${src} serves sha256 ${digest}, uploaded ${record.image_sha256}`);
  return { image_url: src, image_path: new URL(src).pathname, width, height };
}

async function main() {
  const scenario = process.argv[2];
  if (!scenarios[scenario]) {
    console.error(`usage: browser.mjs ${Object.keys(scenarios).join(' | ')}`);
    process.exit(2);
  }
  fs.mkdirSync(SHOTS, { recursive: true });
  const { b, home } = await browser();
  try {
    const newContext = () => b.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
    await scenarios[scenario](await newContext(), [], newContext);
  } finally {
    await b.close();
    fs.rmSync(home, { recursive: true, force: true });
  }
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL  browser ${process.argv[2]}: ${e.stack ?? e}`);
  process.exit(1);
});
