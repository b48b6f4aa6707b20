// What the browser tests' page drivers share: launch headless Chromium (playwright-core) with
// nothing that reaches the network by itself, visit the page once per transport, and print one
// JSON line {transport: result} (or {fatal: stack} and exit 1).
'use strict'
const { chromium } = require('playwright-core')

// Headless, sandbox off (we may run as root), and nothing that reaches the network by itself.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
]
// A page served over https with a test certificate: trust exactly that certificate's key (its
// SPKI hash, base64 of SHA-256), never every certificate (--ignore-certificate-errors).
if (process.env.CHROMIUM_SPKI_PIN) {
  ARGS.push('--ignore-certificate-errors-spki-list=' + process.env.CHROMIUM_SPKI_PIN)
}

// visit(browser, transport) -> result, for each transport in turn.
function runPages(executablePath, transports, visit, timeout) {
  async function main() {
    const browser = await chromium.launch({ executablePath, args: ARGS, timeout })
    try {
      const results = {}
      for (const transport of transports) results[transport] = await visit(browser, transport)
      console.log(JSON.stringify(results))
    } finally {
      await browser.close()
    }
  }
  main().catch(err => {
    console.log(JSON.stringify({ fatal: String(err && err.stack) }))
    process.exit(1)
  })
}

module.exports = { runPages }
