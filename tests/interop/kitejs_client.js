// A kite.js client that calls a Python kite and prints one JSON line of results.
//   node kitejs_client.js URL MODE     (MODE: websocket | sockjs-websocket | sockjs-xhr-polling)
'use strict'
const { Kite } = require('kite.js')

const [url, mode] = process.argv.slice(2)
const options = { url, autoReconnect: false, logLevel: 0 }
if (mode.startsWith('sockjs-')) {
  options.transportClass = Kite.transport.SockJS
  options.transportOptions = { transports: [mode.slice('sockjs-'.length)] }
}

function outcome(promise) {
  return promise.then(
    result => ({ result }),
    err => ({ error: { type: err.type || err.name, message: err.message } })
  )
}

async function run(kite) {
  const results = {}
  results.ping = await outcome(kite.tell('kite.ping'))
  results.square = await outcome(kite.tell('square', [4]))
  results.squareScalar = await outcome(kite.tell('square', 5))
  const seen = []
  results.countdown = await outcome(kite.tell('countdown', [5, n => seen.push(n)]))
  results.seen = seen
  results.missing = await outcome(kite.tell('noSuchMethod', [1]))
  results.failing = await outcome(kite.tell('fail', ['boom']))
  const many = []
  for (let i = 0; i < 200; i++) many.push(kite.tell('square', [i]))
  const squares = await Promise.all(many)
  results.concurrentOk = squares.every((value, i) => value === i * i)
  results.bigLength = await outcome(kite.tell('length', ['x'.repeat(1 << 20)]))
  return results
}

const kite = new Kite(options)
const timer = setTimeout(() => {
  console.log(JSON.stringify({ fatal: 'timed out' }))
  process.exit(2)
}, 60000)
kite.on('open', () => {
  run(kite).then(
    results => {
      console.log(JSON.stringify(results))
      clearTimeout(timer)
      kite.disconnect()
      process.exit(0)
    },
    err => {
      console.log(JSON.stringify({ fatal: String(err && err.stack) }))
      process.exit(1)
    }
  )
})
