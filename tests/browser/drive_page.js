// Opens the example page in headless Chromium (playwright-core) once per SockJS transport and
// prints one JSON line: {transport: {status, transport, ping, square, ticks, countdown, answer,
// errors, foreignRequests}}.
//   node drive_page.js PAGE_URL CHROMIUM TRANSPORT...
'use strict'
const { runPages } = require('./chromium_pages')

const [pageUrl, executablePath, ...transports] = process.argv.slice(2)
const TIMEOUT = 20000

async function visit(browser, transport) {
  const page = await browser.newPage()
  const errors = []
  const foreignRequests = []
  page.on('pageerror', err => errors.push(String(err)))
  page.on('console', msg => { if (msg.type() === 'error') errors.push(msg.text()) })
  page.on('request', req => {
    if (new URL(req.url()).origin !== new URL(pageUrl).origin) foreignRequests.push(req.url())
  })
  // a page that never loaded (say its certificate was refused) shows nothing: null, at once
  const text = id => page.textContent('#' + id, { timeout: 1000 }).catch(() => null)
  try {
    await page.goto(pageUrl + '?transport=' + transport, { timeout: TIMEOUT })
    await page.waitForFunction(
      () => /^(done|error)/.test(document.getElementById('status').textContent),
      null, { timeout: TIMEOUT })
    // Then what a user does: type a number and press the button.
    await page.fill('#x', '12')
    await page.click('button')
    await page.waitForFunction(
      () => document.getElementById('answer').textContent !== '', null, { timeout: TIMEOUT })
  } catch (err) {
    errors.push(String(err))
  }
  const shown = {}
  for (const id of ['status', 'transport', 'ping', 'square', 'ticks', 'countdown', 'answer']) {
    shown[id] = await text(id)
  }
  await page.close()
  return { ...shown, errors, foreignRequests }
}

runPages(executablePath, transports, visit, TIMEOUT)
