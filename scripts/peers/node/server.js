'use strict';
// A plain Node gateway speaking herald's contract, written the way the ws
// and ioredis READMEs write one: a yardstick for herald's benchmarks, not a
// product. One process: the session cookie (an HS256 JWT) buys a
// single-use token; /ws?token= upgrades, subscribes to the user's channel
// and sends the welcome; every message on user:<id> goes to that user's
// sockets, every message on broadcast to all of them. /metrics reports
// the figures the load tester reads, under herald's names.
//
// Environment: HERALD_ADDR (127.0.0.1:8095), HERALD_REDIS_URL (required),
// HERALD_SESSION_SECRET (required), HERALD_SESSION_COOKIE (access_token),
// HERALD_USER_CLAIM (sub), HERALD_CHANNEL_PREFIX (none).

const http = require('node:http');
const crypto = require('node:crypto');
const { WebSocketServer, WebSocket } = require('ws');
const Redis = require('ioredis');

const env = process.env;
const [host, port] = (env.HERALD_ADDR || '127.0.0.1:8095').split(':');
const secret = env.HERALD_SESSION_SECRET;
const cookieName = env.HERALD_SESSION_COOKIE || 'access_token';
const claim = env.HERALD_USER_CLAIM || 'sub';
const prefix = env.HERALD_CHANNEL_PREFIX || '';
if (!env.HERALD_REDIS_URL || !secret) {
  console.error('node peer: HERALD_REDIS_URL and HERALD_SESSION_SECRET are required');
  process.exit(2);
}

const sub = new Redis(env.HERALD_REDIS_URL);
const tokens = new Map(); // token -> { user, expires }
const users = new Map(); // user id -> Set of sockets
const subscribed = new Map(); // user id -> promise of its SUBSCRIBE
let connects = 0;
let delivered = 0;
let nextSocket = 0;

// sessionUser verifies an HS256 session JWT and returns its user claim.
function sessionUser(jwt) {
  const parts = (jwt || '').split('.');
  if (parts.length !== 3) return '';
  const mac = crypto.createHmac('sha256', secret).update(parts[0] + '.' + parts[1]).digest();
  const sig = Buffer.from(parts[2], 'base64url');
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) return '';
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    const body = JSON.parse(Buffer.from(parts[1], 'base64url'));
    if (header.alg !== 'HS256' || (body.exp && body.exp * 1000 < Date.now())) return '';
    const id = body[claim];
    return typeof id === 'string' || typeof id === 'number' ? String(id) : '';
  } catch {
    return '';
  }
}

function cookie(req, name) {
  for (const part of (req.headers.cookie || '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return '';
}

function metrics() {
  const cpu = process.cpuUsage();
  let sockets = 0;
  for (const set of users.values()) sockets += set.size;
  return [
    `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`,
    `process_resident_memory_bytes ${process.memoryUsage.rss()}`,
    `herald_connects_total ${connects}`,
    `herald_messages_delivered_total ${delivered}`,
    `herald_sockets ${sockets}`,
    '',
  ].join('\n');
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/api/ws/token') {
    const user = sessionUser(cookie(req, cookieName));
    if (!user) {
      res.writeHead(401, { 'content-type': 'application/json' });
      return res.end('{"error":"invalid_session"}');
    }
    const token = crypto.randomBytes(18).toString('base64url');
    tokens.set(token, { user, expires: Date.now() + 30000 });
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ token, expires_in: 30 }));
  }
  if (req.method === 'GET' && req.url === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    return res.end(metrics());
  }
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end('{"status":"ok"}');
  }
  res.writeHead(404);
  res.end();
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://peer');
  const token = url.searchParams.get('token') || '';
  const grant = tokens.get(token);
  tokens.delete(token);
  if (url.pathname !== '/ws' || !grant || grant.expires < Date.now()) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => welcome(ws, grant.user));
});

async function welcome(ws, user) {
  let set = users.get(user);
  if (!set) {
    set = new Set();
    users.set(user, set);
    subscribed.set(user, sub.subscribe(prefix + 'user:' + user));
  }
  const leave = () => {
    set.delete(ws);
    if (set.size === 0 && users.get(user) === set) {
      users.delete(user);
      subscribed.delete(user);
      sub.unsubscribe(prefix + 'user:' + user).catch(() => {});
    }
  };
  try {
    await subscribed.get(user);
  } catch {
    ws.close(1013, 'try_again');
  }
  if (ws.readyState !== WebSocket.OPEN) return leave();
  // The welcome goes first: the socket joins its user's set after it.
  nextSocket++;
  ws.send(JSON.stringify({ type: 'welcome', socket_id: `node.${process.pid}.${nextSocket}`, user_id: user, heartbeat_s: 30 }));
  connects++;
  set.add(ws);
  ws.isAlive = true;
  ws.on('pong', () => { ws.isAlive = true; });
  ws.on('message', (data, isBinary) => {
    ws.isAlive = true;
    if (!isBinary && data.toString() === '{"type":"ping"}') ws.send('{"type":"pong"}');
  });
  ws.on('close', leave);
}

sub.subscribe(prefix + 'broadcast');
sub.on('message', (channel, message) => {
  if (channel === prefix + 'broadcast') {
    for (const ws of wss.clients) {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(message);
        delivered++;
      }
    }
    return;
  }
  const set = users.get(channel.slice(prefix.length + 5)); // 'user:'.length
  if (!set) return;
  for (const ws of set) {
    ws.send(message);
    delivered++;
  }
});

// The heartbeat of the ws README: ping every 30 s, drop who did not answer.
const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
  const now = Date.now();
  for (const [token, grant] of tokens) if (grant.expires < now) tokens.delete(token);
}, 30000);

server.listen(Number(port), host, () => {
  console.error(`node peer: serving on ${host}:${server.address().port} (not herald: a yardstick)`);
});

function stop() {
  clearInterval(heartbeat);
  for (const ws of wss.clients) ws.terminate();
  server.close();
  sub.disconnect();
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
