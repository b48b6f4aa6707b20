// A kite.js KiteServer for Python clients; prints "ready" once listening.
//   node kitejs_server.js PORT MODE     (MODE: websocket | sockjs; served under /kite for sockjs)
'use strict'
const { KiteServer } = require('kite.js')

const [port, mode] = process.argv.slice(2)
const server = new KiteServer({
  name: 'jsmath',
  auth: false,
  logLevel: 0,
  prefix: '/kite',
  transportClass: mode === 'sockjs' ? KiteServer.transport.SockJS : KiteServer.transport.WebSocket,
  api: {
    square: (x, done) => done(null, x * x),
    concat: (a, b, done) => done(null, `${a}${b}`),
    length: (s, done) => done(null, s.length),
    fail: (message, done) => done({ type: 'genericError', message }),
    callMeBack: (n, fn, done) => {
      for (let i = 0; i < n; i++) fn(i)
      done(null, n)
    },
    // calls cb n times (n, n-1, ..., 1), then answers: the caller must have seen all n first
    countdown: (n, cb, done) => {
      for (let i = n; i > 0; i--) cb(null, i)
      done(null, 'done')
    },
  },
})
server.listen(Number(port))
console.log('ready')
