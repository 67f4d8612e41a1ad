// The example server of the npm package sse-channel, on a port chosen by the OS.
//
// It serves the package's own example channels (node_modules/sse-channel/examples/channels.js:
// "sysInfo" with numeric ids, retry 250 ms and a 300-event history; "random" without ids) with
// the routing of examples/node.js/server.js. We do not run that file itself: it hardcodes its
// port fallback, prints the requested port rather than the bound one, and needs `node-static`,
// which the package does not install. Prints "Listening on http://127.0.0.1:PORT/" when ready.
'use strict';

const http = require('http');
const channels = require('sse-channel/examples/channels');

const server = http.createServer(function (req, res) {
    if (req.url.indexOf('/channel/sysInfo') === 0) {
        channels.sysInfo.addClient(req, res);
    } else if (req.url.indexOf('/channel/random') === 0) {
        channels.random.addClient(req, res);
    } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found\n');
    }
});

server.listen(Number(process.argv[2] || 0), '127.0.0.1', function () {
    console.log('Listening on http://127.0.0.1:' + server.address().port + '/');
});
