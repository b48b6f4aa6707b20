// A TLS terminator in front of a plain server: kite.js 1.0.13's KiteServer listens on plain
// http/ws only (it makes its own http.createServer / ws.Server and takes no TLS options), so
// the tests put this in front of it. Each TLS connection is piped to the backend port as is.
//   node tls_terminator.js LISTEN_PORT BACKEND_PORT CERT_FILE KEY_FILE   (prints "ready")
'use strict'
const fs = require('fs')
const net = require('net')
const tls = require('tls')

const [listenPort, backendPort, certFile, keyFile] = process.argv.slice(2)
const server = tls.createServer(
  { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) },
  client => {
    const backend = net.connect(Number(backendPort), '127.0.0.1')
    client.pipe(backend).pipe(client)
    client.on('error', () => backend.destroy())
    backend.on('error', () => client.destroy())
  }
)
server.on('tlsClientError', () => {})
server.listen(Number(listenPort), '127.0.0.1', () => console.log('ready'))
