// The REST API (/api/v1) as the console uses it: JSON in and out, the
// caller's credentials (kept in sessionStorage) on every call, and a login
// prompt when the server answers 401.

const AUTH_KEY = 'dataflow.authorization';

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.details = (body && Array.isArray(body.details)) ? body.details : [];
  }
}

export function authorization() {
  return sessionStorage.getItem(AUTH_KEY) || '';
}

export function setAuthorization(value) {
  if (value) sessionStorage.setItem(AUTH_KEY, value);
  else sessionStorage.removeItem(AUTH_KEY);
}

// Set by the app: shows the login form and resolves once the user signed in
// (true) or gave up (false).
let askForLogin = async () => false;
export function onLoginNeeded(fn) { askForLogin = fn; }

// One call. `body`: a string sent as is (with `contentType`) or an object
// sent as JSON. Resolves to the parsed JSON (null for 204); rejects with
// ApiError.
export async function api(method, path, { body, contentType, headers = {} } = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const h = { ...headers };
    const auth = authorization();
    if (auth) h['Authorization'] = auth;
    let payload;
    if (typeof body === 'string') {
      payload = body;
      h['Content-Type'] = contentType || 'application/yaml';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      h['Content-Type'] = 'application/json';
    }
    const response = await fetch('/api/v1' + path, { method, headers: h, body: payload });
    if (response.status === 401 && attempt < 2 && await askForLogin()) continue;
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { error: text }; }
    if (!response.ok) throw new ApiError(response.status, parsed);
    return parsed;
  }
  throw new ApiError(401, { error: 'not signed in' });
}

// What the caller may do. GET /whoami answers {"principal", "roles",
// "permissions", "authentication"}; without authentication every action is
// listed (a 404, from an older server, means the same).
export async function whoami() {
  try {
    const me = await api('GET', '/whoami');
    return { principal: me.principal || '', roles: me.roles || [], permissions: me.permissions || [], open: !me.authentication };
  } catch (e) {
    if (e.status === 404) return { principal: '', roles: [], permissions: ['*'], open: true };
    throw e;
  }
}

// Whether `permissions` (exact actions, "run:*" or "*") grant `action`.
export function allows(permissions, action) {
  const family = action.split(':')[0];
  return permissions.some((p) => p === '*' || p === action || p === family + ':*');
}

// "file:line:col: message" (the API's validation details) -> parts.
export function parseProblem(text) {
  const m = /^(.*?):(\d+):(\d+): (.*)$/s.exec(text);
  if (!m) return { line: null, column: null, message: text };
  return { source: m[1], line: Number(m[2]), column: Number(m[3]), message: m[4] };
}

// base64 -> base64url without padding (RFC 4648 §5).
function urlSafe(b64) { return b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''); }

// A browser's WebSocket cannot send Authorization: the stored credential goes
// as a subprotocol, "dataflow.bearer.<token>" or "dataflow.basic.<user:pass>"
// (base64url), next to plain "dataflow", the one the server answers with
// (docs/rest-api.md).
export function streamProtocols(auth = authorization()) {
  const protocols = ['dataflow'];
  const m = /^(Bearer|Basic) (.+)$/i.exec(auth);
  if (m && m[1].toLowerCase() === 'bearer') protocols.push('dataflow.bearer.' + urlSafe(btoa(unescape(encodeURIComponent(m[2])))));
  else if (m) protocols.push('dataflow.basic.' + urlSafe(m[2]));
  return protocols;
}

// The run's live stream (status, healing events, log lines) over WebSocket.
// The server first replays the run's recent log lines, then sends its status.
export function streamRun(runId, onMessage, onClose) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}/api/v1/runs/${encodeURIComponent(runId)}/stream`, streamProtocols());
  socket.onmessage = (e) => {
    try { onMessage(JSON.parse(e.data)); } catch { /* not JSON: skipped */ }
  };
  socket.onclose = () => onClose && onClose();
  return socket;
}
