// kite.js calls a kite through a proxy and prints one JSON line of results.
//   node kitejs_proxy_client.js URL MODE TOKEN   (MODE: websocket | xhr-polling)
'use strict'
const { Kite } = require('kite.js')

const [url, mode, token] = process.argv.slice(2)
const kite = new Kite({
  url,
  autoReconnect: false,
  logLevel: 0,
  auth: { type: 'token', key: token },
  transportClass: Kite.transport.SockJS,
  transportOptions: { transports: [mode] },
})

function outcome(promise) {
  return promise.then(
    result => ({ result }),
    err => ({ error: { type: err.type || err.name, message: err.message } })
  )
}

const timer = setTimeout(() => {
  console.log(JSON.stringify({ fatal: 'timed out' }))
  process.exit(2)
}, 60000)

kite.on('open', async () => {
  const results = {}
  results.square = await outcome(kite.tell('square', [4]))
  results.length = await outcome(kite.tell('length', ['x'.repeat(1 << 20)]))
  const many = []
  for (let i = 0; i < 64; i++) many.push(kite.tell('square', [i]))
  const squares = await Promise.all(many)
  results.concurrentOk = squares.every((value, i) => value === i * i)
  console.log(JSON.stringify(results))
  clearTimeout(timer)
  kite.disconnect()
  process.exit(0)
})
