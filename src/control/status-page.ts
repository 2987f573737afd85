// The operator's status page: a static shell (no data, so no token needed to load it) and a small
// script that asks for the admin token, keeps it in sessionStorage only, reads GET /v1/overview
// every few seconds and renders it with textContent (names come from manifests: never as HTML).

export const STATUS_PATH = '/status';
export const STATUS_SCRIPT_PATH = '/status/app.js';
export const STATUS_STYLE_PATH = '/status/style.css';

/** Only our own script and style, no inline code, no framing, requests to this origin only. */
export const STATUS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const STATUS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>domsec status</title>
<link rel="stylesheet" href="${STATUS_STYLE_PATH}">
<script src="${STATUS_SCRIPT_PATH}" defer></script>
</head>
<body>
<header>
  <h1>domsec <span id="organization-name"></span></h1>
  <p id="updated" aria-live="polite">not connected</p>
  <button type="button" id="forget" hidden>Forget token</button>
</header>
<form id="login" hidden>
  <label for="token">Admin token</label>
  <input id="token" type="password" autocomplete="off" required>
  <button type="submit">Show status</button>
  <p id="login-error" role="alert"></p>
</form>
<p id="error" role="alert" hidden></p>
<main id="view" hidden>
  <section id="organization">
    <h2>Organization</h2>
    <dl>
      <dt>Host name</dt><dd id="org-hostname"></dd>
      <dt>Accepted domains</dt><dd id="org-domains"></dd>
      <dt>Certificate</dt><dd id="org-certificate"></dd>
    </dl>
  </section>
  <section>
    <h2>Partners</h2>
    <table id="partners">
      <thead><tr><th>Partner</th><th>Send (we send to them)</th><th>Receive (they send to us)</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Connectors</h2>
    <table id="receive-connectors">
      <thead><tr><th>Receive connector</th><th>Bindings</th><th>Domain security</th><th>Sessions</th></tr></thead>
      <tbody></tbody>
    </table>
    <table id="send-connectors">
      <thead><tr><th>Send connector</th><th>Address spaces</th><th>Routing</th><th>Domain security</th><th>Sessions</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Queues</h2>
    <p id="queues-empty">No queued messages.</p>
    <table id="queues">
      <thead><tr><th>Next hop</th><th>Messages</th><th>Status</th><th>Last error</th><th>Next retry</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>TLS policy results</h2>
    <p id="policy-results-empty">No session under a TLS policy yet.</p>
    <table id="policy-results">
      <thead><tr><th>Policy domain</th><th>Policy</th><th>Successful</th><th>Failed</th><th>Failures by result</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="reconcile">
    <h2>Last reconcile</h2>
    <dl>
      <dt>Generation</dt><dd id="reconcile-generation"></dd>
      <dt>Source</dt><dd id="reconcile-source"></dd>
      <dt>Git revision</dt><dd id="reconcile-revision"></dd>
      <dt>Status</dt><dd id="reconcile-status"></dd>
      <dt>Error</dt><dd id="reconcile-error"></dd>
    </dl>
  </section>
</main>
</body>
</html>
`;

export const STATUS_STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d232a; }
header { display: flex; gap: 1rem; align-items: baseline; }
h1 { font-size: 1.4rem; margin: 0; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; margin-bottom: 1rem; min-width: 40rem; }
th, td { border: 1px solid #c8ced6; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #eef1f4; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
.mark { display: inline-block; padding: 0 .4rem; border-radius: .3rem; font-weight: 600; }
.mark.secured { background: #d6f5dd; color: #135d25; }
.mark.failing { background: #fbd9d7; color: #8c1d15; }
.mark.not-configured { background: #e6e8eb; color: #4a525c; }
.mark.no-session-yet { background: #fdf1cc; color: #6b5100; }
.detail { font-size: .85rem; color: #4a525c; word-break: break-all; }
.fingerprint { font-family: ui-monospace, monospace; }
#error, #login-error { color: #8c1d15; }
`;

export const STATUS_SCRIPT = `'use strict';
(() => {
  const KEY = 'domsec.adminToken';
  const REFRESH_MS = 3000;
  const $ = (id) => document.getElementById(id);
  let timer;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  function row(cells) {
    const tr = document.createElement('tr');
    for (const cell of cells) {
      const td = document.createElement('td');
      if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? '';
      tr.append(td);
    }
    return tr;
  }
  function time(iso) {
    return iso ? new Date(iso).toLocaleString() : '';
  }
  const LABELS = { secured: 'secured', failing: 'failing', 'not-configured': 'not configured', 'no-session-yet': 'no session yet' };

  function direction(view) {
    const box = el('div');
    box.append(el('span', LABELS[view.mark] ?? view.mark, 'mark ' + view.mark));
    if (view.mark === 'failing' && view.lastRefusal) {
      box.append(el('div', 'refused: ' + view.lastRefusal.reason + ' (' + time(view.lastRefusal.at) + ')', 'detail refusal'));
    }
    const cert = view.lastVerified;
    if (cert) {
      box.append(el('div', 'last verified: ' + cert.subject, 'detail subject'));
      box.append(el('div', 'sha256 ' + cert.fingerprint, 'detail fingerprint'));
      box.append(el('div', 'expires ' + (cert.notAfter ? time(cert.notAfter) : 'unknown') + ', seen ' + time(cert.at), 'detail expiry'));
    }
    return box;
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function render(data) {
    const org = data.organization;
    $('organization-name').textContent = org ? org.name + ' (' + org.hostname + ')' : '(no configuration applied)';
    $('org-hostname').textContent = org ? org.hostname : '';
    $('org-domains').textContent = org ? org.acceptedDomains.join(', ') : '';
    $('org-certificate').textContent = org
      ? org.certificate.subject + ', sha256 ' + org.certificate.fingerprint + ', expires ' + time(org.certificate.notAfter)
      : '';
    fill($('partners').tBodies[0], data.partners.map((p) => {
      const tr = row([el('span', p.name + ' (' + p.domain + ')'), direction(p.send), direction(p.receive)]);
      tr.dataset.partner = p.domain;
      tr.cells[1].className = 'send';
      tr.cells[2].className = 'receive';
      return tr;
    }));
    fill($('receive-connectors').tBodies[0], data.receiveConnectors.map((c) => {
      const tr = row([
        c.name,
        c.bindings.map((b) => b.binding + (b.listening ? '' : ' (not listening)')).join(', '),
        c.domainSecure ? 'enabled' : 'off',
        String(c.sessions),
      ]);
      tr.dataset.connector = c.name;
      return tr;
    }));
    fill($('send-connectors').tBodies[0], data.sendConnectors.map((c) => {
      const tr = row([
        c.name,
        c.addressSpaces.join(', '),
        c.routing,
        c.domainSecure ? 'enabled' : 'off',
        String(c.sessions),
      ]);
      tr.dataset.connector = c.name;
      return tr;
    }));
    $('queues-empty').hidden = data.queues.length > 0;
    fill($('queues').tBodies[0], data.queues.map((q) => {
      const suspended = q.status === 'suspended';
      const button = el('button', 'Retry now', 'retry');
      button.type = 'button';
      // A held queue is not retried (the engine would refuse): lift the hold first.
      button.disabled = suspended;
      button.addEventListener('click', () => retry(q.nextHopDomain, button));
      const toggle = el('button', suspended ? 'Resume' : 'Suspend', suspended ? 'resume' : 'suspend');
      toggle.type = 'button';
      toggle.addEventListener('click', () => hold(q.nextHopDomain, !suspended, toggle));
      const actions = el('span', null, 'queue-actions');
      actions.append(button, ' ', toggle);
      const tr = row([q.nextHopDomain, String(q.messageCount), q.status, q.lastError ?? '', time(q.nextRetryAt), actions]);
      tr.dataset.domain = q.nextHopDomain;
      tr.cells[3].className = 'last-error';
      return tr;
    }));
    const results = data.policyResults ?? [];
    $('policy-results-empty').hidden = results.length > 0;
    fill($('policy-results').tBodies[0], results.map((p) => {
      const tr = row([
        p.domain,
        p.policyTypes.join(', '),
        String(p.successful),
        String(p.failed),
        p.failures.map((f) => f.result + ' ' + f.sessions).join(', '),
      ]);
      tr.dataset.policyDomain = p.domain;
      tr.cells[4].className = 'failures';
      return tr;
    }));
    const r = data.reconcile;
    $('reconcile-generation').textContent = String(r.generation) + (r.appliedAt ? ' applied ' + time(r.appliedAt) : '');
    $('reconcile-source').textContent = r.source ?? '';
    $('reconcile-revision').textContent = r.revision ?? '';
    $('reconcile-status').textContent = r.status.lastAttemptOutcome
      ? r.status.lastAttemptOutcome + ' at ' + time(r.status.lastAttemptAt) + (r.status.reconciler ? ' by ' + r.status.reconciler : '')
      : 'no reconcile reported';
    $('reconcile-error').textContent = r.status.lastAttemptError ?? '';
    $('updated').textContent = 'updated ' + time(data.generatedAt);
    $('updated').dataset.generatedAt = data.generatedAt;
  }

  async function request(method, path, body) {
    const token = sessionStorage.getItem(KEY);
    if (!token) throw Object.assign(new Error('no token'), { status: 401 });
    const response = await fetch(path, {
      method,
      headers: Object.assign({ authorization: 'Bearer ' + token }, body ? { 'content-type': 'application/json' } : {}),
      body: body ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
      throw Object.assign(new Error(message), { status: response.status });
    }
    return response.json();
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      render(await request('GET', '/v1/overview'));
      $('error').hidden = true;
      $('view').hidden = false;
      $('login').hidden = true;
      $('forget').hidden = false;
    } catch (error) {
      if (error.status === 401) return askToken(sessionStorage.getItem(KEY) ? 'the token was refused' : '');
      $('error').textContent = 'cannot read the engine status: ' + error.message;
      $('error').hidden = false;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  async function retry(domain, button) {
    button.disabled = true;
    try {
      const result = await request('POST', '/v1/queues/retry', { domain });
      button.textContent = 'Retrying ' + result.retried;
    } catch (error) {
      $('error').textContent = 'retry failed: ' + error.message;
      $('error').hidden = false;
    }
    refresh();
  }

  async function hold(domain, suspend, button) {
    button.disabled = true;
    try {
      await request('POST', suspend ? '/v1/queues/suspend' : '/v1/queues/resume', { domain });
    } catch (error) {
      $('error').textContent = (suspend ? 'suspend' : 'resume') + ' failed: ' + error.message;
      $('error').hidden = false;
    }
    refresh();
  }

  function askToken(problem) {
    clearTimeout(timer);
    sessionStorage.removeItem(KEY);
    $('view').hidden = true;
    $('forget').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = problem;
    $('token').focus();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login').addEventListener('submit', (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $('token').value.trim());
      $('token').value = '';
      refresh();
    });
    $('forget').addEventListener('click', () => askToken(''));
    if (sessionStorage.getItem(KEY)) refresh(); else askToken('');
  });
})();
`;
