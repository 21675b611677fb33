// The admin page: one self-contained HTML document (no build step, no external assets) over the
// JSON API. It reloads what it shows whenever /api/events says something changed, so a PUBLISH or a
// SUBSCRIBE appears within a moment. Values are inserted as text (textContent), never as HTML: AORs,
// notes and documents come from the network.
export const ADMIN_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Herald admin</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f7f8fa; --card:#fff; --accent:#2f6fed; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; align-items:center; gap:16px; padding:12px 20px; background:#12203a; color:#fff; }
  header h1 { font-size:18px; margin:0; font-weight:600; }
  header .meta { color:#b8c3d9; font-size:12px; }
  header .live { margin-left:auto; font-size:12px; }
  .dot { display:inline-block; width:12px; height:12px; border-radius:50%; vertical-align:middle; border:1px solid rgba(0,0,0,.15); }
  .green { background:#22c55e; } .amber { background:#f59e0b; } .red { background:#ef4444; } .grey { background:#a3a9b5; }
  main { display:grid; grid-template-columns: minmax(420px, 1fr) minmax(420px, 1fr); gap:16px; padding:16px 20px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; overflow-x:auto; min-width:0; }
  section h2 { font-size:14px; margin:0 0 8px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
  input[type=search] { width:100%; padding:8px 10px; border:1px solid var(--line); border-radius:6px; font:inherit; margin-bottom:8px; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:6px 6px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { font-weight:600; color:var(--muted); font-size:12px; }
  tr.row { cursor:pointer; } tr.row:hover { background:#f0f4ff; } tr.sel { background:#e4ecff; }
  .aor { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:13px; }
  .badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; background:#eef2f6; }
  .badge.active { background:#dcfce7; } .badge.pending { background:#fef3c7; } .badge.terminated, .badge.waiting { background:#fee2e2; }
  .badge.online { background:#dcfce7; } .badge.offline, .badge.connecting { background:#fee2e2; }
  pre { background:#0f172a; color:#e2e8f0; padding:10px; border-radius:6px; overflow:auto; max-height:320px; font-size:12px; white-space:pre-wrap; word-break:break-all; }
  .decide { white-space:nowrap; margin-top:4px; } .decide button + button { margin-left:4px; }
  .empty { color:var(--muted); font-style:italic; }
  .stack > section + section { margin-top:16px; }
  button { font:inherit; font-size:11px; padding:1px 6px; border:1px solid var(--line); border-radius:5px; background:#fff; cursor:pointer; }
  button:hover { border-color:var(--accent); }
</style>
</head>
<body>
<header>
  <h1>Herald</h1>
  <span class="meta" id="status">connecting…</span>
  <span class="live" id="live">○ offline</span>
</header>
<main>
  <div class="stack">
    <section>
      <h2>Presentities</h2>
      <input type="search" id="search" placeholder="Search presentities, watchers, lists…" aria-label="search">
      <table id="presentities"><thead><tr><th></th><th>Presentity</th><th>Note</th><th>Devices</th><th>Watchers</th></tr></thead><tbody></tbody></table>
    </section>
    <section>
      <h2>List subscriptions</h2>
      <table id="lists"><thead><tr><th>List</th><th>Watcher</th><th>Members</th></tr></thead><tbody></tbody></table>
    </section>
    <section>
      <h2>Gateway links</h2>
      <div id="peers"></div>
    </section>
  </div>
  <div class="stack">
    <section id="detail">
      <h2>Presentity</h2>
      <div id="detail-body" class="empty">Select a presentity.</div>
    </section>
  </div>
</main>
<script>
'use strict';
let selected = null;
const q = () => document.getElementById('search').value.trim().toLowerCase();
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v); }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? '' : String(k)));
  return e;
};
const dot = (c) => el('span', { class: 'dot ' + c, title: c });
const badge = (s) => el('span', { class: 'badge ' + s }, s);
const api = async (path, opts) => { const r = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts)); if (!r.ok) throw new Error(path + ': ' + r.status); return r.json(); };
const matches = (obj) => !q() || JSON.stringify(obj).toLowerCase().includes(q());
function fill(tbody, rows, empty, cols) {
  tbody.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { class: 'empty', colspan: String(cols) }, empty))]));
}
async function refresh() {
  try {
    const [status, pres, lists, peers] = await Promise.all([api('/api/status'), api('/api/presentities?limit=1000'), api('/api/lists?limit=1000'), api('/api/peers')]);
    document.getElementById('status').textContent = status.domains.join(', ') + ' · ' + status.presentities + ' presentities · ' + status.subscriptions + ' subscriptions · ' + status.listSubscriptions + ' lists · v' + status.version;
    const tb = document.querySelector('#presentities tbody');
    fill(tb, pres.items.filter(matches).map((p) => {
      const tr = el('tr', { class: 'row' + (p.aor === selected ? ' sel' : ''), 'data-aor': p.aor, onclick: () => { selected = p.aor; refresh(); } },
        el('td', {}, dot(p.colour)), el('td', { class: 'aor' }, p.aor), el('td', {}, p.note || ''), el('td', {}, p.publications), el('td', {}, p.watchers));
      return tr;
    }), 'No presentities yet.', 5);
    fill(document.querySelector('#lists tbody'), lists.items.filter(matches).map((l) =>
      el('tr', {}, el('td', { class: 'aor' }, l.list), el('td', { class: 'aor' }, l.watcher),
        el('td', {}, ...l.members.map((m) => el('div', {}, badge(m.state), ' ', el('span', { class: 'aor' }, m.uri)))))), 'No list subscriptions.', 3);
    const pd = document.getElementById('peers');
    const parts = [];
    const doms = Object.entries(peers.sip.domains || {});
    parts.push(el('div', {}, el('b', {}, 'SIP gateway: '), peers.sip.enabled ? (doms.length ? '' : 'no upstream dialogs') : 'off'));
    for (const [d, links] of doms) for (const l of links) parts.push(el('div', { class: 'aor' }, badge(l.phase), ' ', d, ' — ', l.resource, ' (', l.watchers, ' watchers)'));
    parts.push(el('div', {}, el('b', {}, 'XMPP component: '), peers.xmpp.enabled ? badge(peers.xmpp.component) : 'off', peers.xmpp.enabled ? ' ' + peers.xmpp.componentDomain : ''));
    for (const r of (peers.xmpp.rosters || [])) parts.push(el('div', { class: 'aor' }, badge(r.online ? 'online' : 'offline'), ' ', r.sip, ' ⇄ ', r.jid, ' (', r.contacts, ' contacts)'));
    pd.replaceChildren(...parts);
    if (selected) await showDetail(selected);
  } catch (e) {
    document.getElementById('status').textContent = String(e.message || e);
  }
}
async function decide(owner, watcher, action) {
  await api('/api/presentities/' + encodeURIComponent(owner) + '/watchers/' + encodeURIComponent(watcher), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action }) });
  refresh();
}
/** One element a line, indented by depth: enough to read a PIDF document (text, never parsed as HTML). */
function indentXml(xml) {
  let depth = 0;
  return xml.replace(/>\\s*</g, '>\\n<').split('\\n').map((line) => {
    if (/^<\\//.test(line)) depth = Math.max(0, depth - 1);
    const out = '  '.repeat(depth) + line;
    if (/^<[^!?\\/][^>]*[^\\/]>$/.test(line) && !/<\\//.test(line)) depth++;
    return out;
  }).join('\\n');
}
async function showDetail(aor) {
  const d = await api('/api/presentities/' + encodeURIComponent(aor));
  const body = document.getElementById('detail-body');
  body.className = '';
  const pubs = d.publicationList.map((p) => el('tr', {}, el('td', { class: 'aor' }, (p.devices.length ? p.devices : p.tuples).join(', ')), el('td', { class: 'aor' }, p.etag), el('td', {}, p.expiresIn + ' s')));
  const ws = d.watcherList.map((w) => el('tr', {},
    el('td', {}, el('div', { class: 'aor' }, w.watcher), el('div', { class: 'decide' }, ...['approve', 'polite-block', 'block'].map((a) => el('button', { onclick: () => decide(d.aor, w.watcher, a) }, a)))),
    el('td', {}, badge(w.status)), el('td', {}, w.event), el('td', { class: 'aor' }, w.from)));
  body.replaceChildren(
    el('h3', { id: 'detail-aor' }, dot(d.colour), ' ', el('span', { class: 'aor' }, d.aor)),
    el('div', {}, 'Basic: ', el('b', { id: 'detail-basic' }, d.basic), d.note ? ' · “' + d.note + '”' : '', d.activities.length ? ' · ' + d.activities.join(', ') : ''),
    el('h4', {}, 'Publications'),
    pubs.length ? el('table', { id: 'detail-pubs' }, el('thead', {}, el('tr', {}, el('th', {}, 'Device'), el('th', {}, 'ETag'), el('th', {}, 'Expires'))), el('tbody', {}, ...pubs)) : el('div', { class: 'empty' }, 'No publications.'),
    el('h4', {}, 'Watchers'),
    ws.length ? el('table', { id: 'detail-watchers' }, el('thead', {}, el('tr', {}, el('th', {}, 'Watcher (decide)'), el('th', {}, 'State'), el('th', {}, 'Event'), el('th', {}, 'From'))), el('tbody', {}, ...ws)) : el('div', { class: 'empty' }, 'No watchers.'),
    el('h4', {}, 'Composed document'),
    el('pre', { id: 'detail-document' }, d.document ? indentXml(d.document) : '(nothing published)'));
}
document.getElementById('search').addEventListener('input', refresh);
function connect() {
  const es = new EventSource('/api/events');
  es.addEventListener('hello', () => { document.getElementById('live').textContent = '● live'; refresh(); });
  es.addEventListener('change', refresh);
  es.onerror = () => { document.getElementById('live').textContent = '○ reconnecting'; };
}
connect();
refresh();
</script>
</body>
</html>
`;
