// kite.js's Kontrol client against a Python Kontrol; one JSON object per stdout line.
//   node kitejs_kontrol.js KONTROL_URL KITE_KEY QUERY_JSON
// Watches QUERY at once (prints {"watcherID"}), then prints every `changes` event and obeys
// commands read from stdin, one JSON object per line:
//   {"cmd": "cancel", "id": ID}      cancelWatcher(ID)
//   {"cmd": "fetch", "query": Q}     fetchKites, call square(3) with the token, renewToken
//   {"cmd": "register", "url": URL}  register(URL)
'use strict'
const readline = require('readline')
const { Kite, Kontrol } = require('kite.js')

const [url, key, queryJson] = process.argv.slice(2)
const query = JSON.parse(queryJson)
const out = obj => console.log(JSON.stringify(obj))
const describe = k => ({
  name: k.options.name,
  hostname: k.options.hostname,
  region: k.options.region,
  url: k.options.url,
  token: k.options.auth && k.options.auth.key
})
const failure = err => ({ type: err && (err.type || err.name), message: err && err.message })

const kontrol = new Kontrol({
  url,
  auth: { type: 'kiteKey', key },
  username: 'watcher',
  environment: 'production',
  autoReconnect: false,
  logLevel: 0,
  // kite.js copies this option even when it is undefined, replacing the default transport
  transportClass: Kite.transport.WebSocket
})
kontrol.on('error', err => out({ kontrolError: String(err) }))

const commands = {
  cancel: cmd =>
    kontrol.cancelWatcher(cmd.id).then(
      result => out({ cancelled: result === undefined ? null : result }),
      err => out({ cancelError: failure(err) })
    ),
  fetch: async cmd => {
    try {
      const kites = await kontrol.fetchKites({ query: cmd.query })
      const kite = kites[0]
      kite.connect()
      // the kites kite.js's Kontrol makes are callback-style
      const square = await new Promise((resolve, reject) =>
        kite.tell('square', [3], (err, result) => (err ? reject(err) : resolve(result)))
      )
      // renewToken asks getToken for the kite (kite.js makes up a new id for the kites it
      // creates, so the query names it by username/environment/name) and calls setToken
      const renewed = await new Promise((resolve, reject) => {
        kite.setToken = resolve
        kontrol.renewToken(kite, cmd.query)
        setTimeout(() => reject(new Error('renewToken never called setToken')), 10000)
      })
      out({ fetched: kites.length, square, renewed })
      kite.disconnect()
    } catch (err) {
      out({ fetchError: failure(err) })
    }
  },
  register: cmd =>
    kontrol.register(cmd.url).then(
      result => out({ registered: result }),
      err => out({ registerError: failure(err) })
    )
}

kontrol.on('open', async () => {
  try {
    const { changes, watcherID } = await kontrol.watchKites({ query })
    changes.on('register', k => out({ event: 'register', kite: describe(k) }))
    changes.on('deregister', k => out({ event: 'deregister', kite: describe(k) }))
    changes.on('error', err => out({ event: 'error', error: String(err) }))
    out({ watcherID })
  } catch (err) {
    out({ watchError: failure(err) })
  }
})

readline.createInterface({ input: process.stdin }).on('line', line => {
  const cmd = JSON.parse(line)
  if (cmd.cmd === 'exit') process.exit(0)
  commands[cmd.cmd](cmd)
})
setTimeout(() => process.exit(3), 120000)
