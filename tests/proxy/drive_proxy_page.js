// Opens a page in headless Chromium (playwright-core) that calls a kite through a proxy with
// kite.js; prints one JSON line {transport: {status, errors}}.
//   node drive_proxy_page.js PAGE_URL CHROMIUM TRANSPORT...
'use strict'
const { runPages } = require('../browser/chromium_pages')

const [pageUrl, executablePath, ...transports] = process.argv.slice(2)
const TIMEOUT = 30000

async function visit(browser, transport) {
  const page = await browser.newPage()
  const errors = []
  page.on('pageerror', err => errors.push(String(err)))
  try {
    await page.goto(pageUrl + '&transport=' + transport, { timeout: TIMEOUT })
    await page.waitForFunction(
      () => /^(done|error)/.test(document.getElementById('status').textContent),
      null, { timeout: TIMEOUT })
  } catch (err) {
    errors.push(String(err))
  }
  const status = await page.textContent('#status')
  await page.close()
  return { status, errors }
}

runPages(executablePath, transports, visit, TIMEOUT)
