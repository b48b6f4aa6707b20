// Calls the kite that served this page, with kite.js over SockJS, and shows the results.
'use strict'

const show = (id, value) => { document.getElementById(id).textContent = value }

// ?transport=xhr-polling (repeatable) limits the SockJS transports sockjs-client may use.
const transports = new URLSearchParams(location.search).getAll('transport')
const kite = new Kite({
  url: location.origin + '/kite',
  transportClass: Kite.transport.SockJS,
  transportOptions: transports.length ? { transports } : {},
  autoReconnect: false,
  logLevel: 0,
})

async function run() {
  show('transport', kite.ws.transport) // the transport sockjs-client settled on
  show('ping', await kite.tell('kite.ping'))
  show('square', await kite.tell('square', [4]))
  const ticks = []
  // A function among the arguments becomes a callback the kite can call (dnode).
  const result = await kite.tell('countdown', [3, n => { ticks.push(n); show('ticks', ticks.join(' ')) }])
  show('countdown', result)
}

kite.on('open', () => {
  show('status', 'connected')
  run().then(() => show('status', 'done'), err => show('status', 'error: ' + err.message))
})

document.getElementById('form').addEventListener('submit', event => {
  event.preventDefault()
  const x = Number(document.getElementById('x').value)
  kite.tell('square', [x]).then(answer => show('answer', answer), err => show('answer', err.message))
})
