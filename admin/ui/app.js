// meridian dashboard: polls the admin API of the node that serves it and
// draws regions, fleet nodes, services with their dials and live traffic
// split, running shifts, failovers and drills, and the audit tail. With a
// write token it changes dials and overrides and starts and aborts shifts,
// each after a confirmation. The token lives in this tab's sessionStorage
// and travels only as a bearer header. Every value from the API is put in
// the page as text, never as markup.
'use strict';

const TOKEN_KEY = 'meridian.token';
const REFRESH_MS = 1500;
const HISTORY = 80; // chart points per service
const COLORS = ['#0969da', '#1a7f37', '#bf8700', '#8250df', '#cf222e', '#1b7c83', '#bc4c00', '#6e7781'];

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let canWrite = false;
let polling = false;
let timer = 0;
let prevSample = null;
const history = new Map(); // service → [{region: rate}]
const regionColor = new Map();

const $ = (id) => document.getElementById(id);

// h builds an element; string and number children become text nodes.
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of kids.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}

// syncRows makes tbody's rows those of items, in order: a row whose key
// is already there is kept and updated in place, so that its controls keep
// their state, focus and identity across refreshes; others are built.
function syncRows(tbody, items, keyOf, build, update) {
  const have = new Map([...tbody.rows].map((tr) => [tr.dataset.rowKey, tr]));
  const rows = items.map((it) => {
    const key = keyOf(it);
    let tr = have.get(key);
    if (!tr) {
      tr = build(it);
      tr.dataset.rowKey = key;
    }
    update(tr, it);
    return tr;
  });
  if (rows.length !== tbody.rows.length || rows.some((r, i) => tbody.rows[i] !== r)) tbody.replaceChildren(...rows);
}

// setCell sets a cell's text and class.
function setCell(td, text, cls) {
  if (td.textContent !== text) td.textContent = text;
  if (cls !== undefined && td.className !== cls) td.className = cls;
}

// editable marks a control as being edited from its first input until
// done is called: refreshes leave its value alone meanwhile.
function editable(e) {
  e.addEventListener('input', () => { e.dataset.dirty = '1'; });
  e.addEventListener('change', () => { e.dataset.dirty = '1'; });
  return e;
}

function setValue(e, v) {
  if (e.dataset.dirty === '1' || document.activeElement === e) return;
  if (e.value !== String(v)) e.value = String(v);
}

function done(e) { delete e.dataset.dirty; }

async function api(method, path, body, headers) {
  const opts = { method, headers: { Authorization: 'Bearer ' + token, Accept: 'application/json', ...(headers || {}) } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    const e = new Error((data && data.error) || (r.status + ' ' + r.statusText));
    e.status = r.status;
    throw e;
  }
  return data;
}

function colorOf(region) {
  if (!regionColor.has(region)) regionColor.set(region, COLORS[regionColor.size % COLORS.length]);
  return regionColor.get(region);
}

// parseMetrics sums the request and DNS answer counters per service and
// region from the Prometheus text format.
function parseMetrics(text) {
  const sample = { t: performance.now(), req: new Map(), dns: new Map() };
  for (const line of text.split('\n')) {
    let into = null;
    if (line.startsWith('meridian_proxy_requests_total{')) into = sample.req;
    else if (line.startsWith('meridian_dns_answers_total{')) into = sample.dns;
    else continue;
    const close = line.lastIndexOf('}');
    const labels = {};
    for (const m of line.slice(line.indexOf('{') + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = m[2];
    const v = parseFloat(line.slice(close + 1));
    if (!Number.isFinite(v)) continue;
    const key = labels.service + '/' + labels.region;
    into.set(key, (into.get(key) || 0) + v);
  }
  return sample;
}

function rate(cur, prev, map, key) {
  if (!prev) return 0;
  const dt = (cur.t - prev.t) / 1000;
  if (dt <= 0) return 0;
  return Math.max(0, ((cur[map].get(key) || 0) - (prev[map].get(key) || 0)) / dt);
}

function fmtRate(r) {
  if (r >= 100) return r.toFixed(0) + '/s';
  if (r >= 1) return r.toFixed(1) + '/s';
  return r > 0 ? r.toFixed(2) + '/s' : '0';
}

function ago(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t) || t <= 0) return '-';
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 90) return s.toFixed(0) + 's ago';
  if (s < 5400) return (s / 60).toFixed(0) + 'm ago';
  return (s / 3600).toFixed(1) + 'h ago';
}

// confirmChange asks before a change, with a reason; resolves to the
// reason, or null when cancelled.
function confirmChange(text) {
  const d = $('confirm');
  $('confirm-text').textContent = text;
  $('confirm-reason').value = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok' ? $('confirm-reason').value : null), { once: true });
    d.showModal();
  });
}

async function change(text, fn) {
  const reason = await confirmChange(text);
  if (reason === null) return;
  try {
    await fn(reason);
    $('error').textContent = '';
  } catch (e) {
    $('error').textContent = e.message;
  }
  refresh();
}

function renderRegions(status) {
  syncRows($('regions').tBodies[0], status.regions, (r) => r.name, (r) => {
    const force = editable(h('select', { 'data-override': r.name, 'aria-label': 'override ' + r.name },
      ['auto', 'up', 'down'].map((v) => h('option', { value: v, text: v }))));
    force.addEventListener('change', () => {
      const v = force.value;
      change(`Set the override of region ${r.name} to ${v}?`, (reason) =>
        api('POST', `/v1/regions/${encodeURIComponent(r.name)}/override`, { health: v, reason })).then(() => done(force));
    });
    const tr = h('tr', { 'data-region': r.name }, h('td', { text: r.name }), h('td', { 'data-health': r.name }), h('td'), h('td'), h('td'),
      h('td', { class: 'write' }, force));
    tr.force = force;
    return tr;
  }, (tr, r) => {
    const c = tr.cells;
    const forced = r.override && r.override !== 'auto';
    setCell(c[1], r.effective_up ? 'up' : 'down', r.effective_up ? 'up' : 'down');
    setCell(c[2], r.override || 'auto', forced ? 'forced' : 'muted');
    setCell(c[3], r.rtt_ms > 0 ? r.rtt_ms.toFixed(1) + ' ms' : '-');
    c[4].replaceChildren(...r.endpoints.map((e) => h('div', {}, h('span', { class: e.up ? 'up' : 'down', text: e.up ? '●' : '○' }), ' ', e.endpoint,
      h('span', { class: 'muted', text: ' ' + (e.last_result || '') + (e.ejected ? ' (ejected)' : '') }))));
    setValue(tr.force, r.override || 'auto');
  });
}

function renderNodes(body) {
  const nodes = (body && body.nodes) || [];
  $('nodes').tBodies[0].replaceChildren(...nodes.map((n) => {
    const down = (n.regions || []).filter((r) => !r.up).map((r) => r.name);
    return h('tr', {},
      h('td', { text: n.name }),
      h('td', { text: n.version || '-' }),
      h('td', { class: n.ready ? 'up' : 'down', text: n.ready ? 'yes' : 'no' }),
      h('td', { text: (n.config_hash || '').slice(0, 12) || '-' }),
      h('td', { class: down.length ? 'down' : 'muted', text: down.join(', ') || 'none' }));
  }));
}

function chart(points, regions) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('viewBox', `0 0 ${HISTORY} 60`);
  svg.setAttribute('preserveAspectRatio', 'none');
  let max = 0;
  for (const p of points) for (const r of regions) max = Math.max(max, p[r] || 0);
  if (max === 0) return svg;
  for (const r of regions) {
    const line = document.createElementNS(NS, 'polyline');
    const off = HISTORY - points.length;
    line.setAttribute('points', points.map((p, i) => `${off + i},${(58 - 56 * (p[r] || 0) / max).toFixed(1)}`).join(' '));
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', colorOf(r));
    line.setAttribute('stroke-width', '1.5');
    line.setAttribute('vector-effect', 'non-scaling-stroke');
    svg.append(line);
  }
  return svg;
}

// buildService makes a service's block once: its region rows with their
// dial controls, the split bar, the chart, the legend and the shift form.
// renderServices updates it in place.
function buildService(s) {
  const tbody = h('tbody');
  const block = h('div', { class: 'svc', 'data-service': s.name },
    h('h3', {}, s.name, h('span', { class: 'muted' })),
    h('table', {},
      h('thead', {}, h('tr', {}, ['Region', 'Health', 'Dial', 'Eligible', 'Requests', 'DNS answers', 'Share'].map((x) => h('th', { text: x })), h('th', { class: 'write' }))),
      tbody),
    h('div', { class: 'split', title: 'share of requests and DNS answers per region' }),
    h('div', { class: 'chart-box' }),
    h('div', { class: 'legend' }));
  const shiftRegion = editable(h('select', { 'aria-label': 'shift region' }, s.regions.map((r) => h('option', { value: r.name, text: r.name }))));
  const steps = editable(h('input', { type: 'text', size: 10, value: '10,100', 'aria-label': 'shift steps' }));
  const hold = editable(h('input', { type: 'text', size: 5, value: '1m', 'aria-label': 'shift hold' }));
  const start = h('button', {
    type: 'button', text: 'Start shift',
    onclick: () => {
      const list = steps.value.split(',').map((x) => parseInt(x.trim(), 10));
      if (list.some((x) => !(x >= 0 && x <= 100))) { $('error').textContent = 'steps are dials from 0 to 100, comma-separated'; return; }
      change(`Shift ${shiftRegion.value} in ${s.name} through ${list.join('%, ')}%, holding ${hold.value} each?`, (reason) =>
        api('POST', `/v1/services/${encodeURIComponent(s.name)}/shifts`, { region: shiftRegion.value, steps: list, hold: hold.value, reason }));
    },
  });
  block.append(h('p', { class: 'write' }, 'Shift ', shiftRegion, ' steps ', steps, ' hold ', hold, ' ', start));
  block.tbody = tbody;
  block.sig = s.regions.map((r) => r.name).join(',');
  return block;
}

function buildServiceRow(s, r) {
  const sr = s.name + '/' + r.name;
  const dial = editable(h('input', { type: 'number', min: 0, max: 100, value: r.dial, 'data-dial': sr, 'aria-label': `dial ${s.name} ${r.name}` }));
  const set = h('button', {
    type: 'button', text: 'Set', 'data-set-dial': sr,
    onclick: () => {
      const v = parseInt(dial.value, 10);
      if (!(v >= 0 && v <= 100)) { $('error').textContent = 'a dial is a whole number from 0 to 100'; return; }
      const cur = tr.view;
      change(`Set the dial of ${r.name} in ${s.name} from ${cur.dial}% to ${v}%?`, async (reason) => {
        await api('PATCH', `/v1/services/${encodeURIComponent(s.name)}/dials`, { dials: { [r.name]: v }, reason }, { 'If-Match': tr.etag });
        done(dial);
      });
    },
  });
  const sw = h('span', { class: 'swatch' });
  sw.style.background = colorOf(r.name);
  const tr = h('tr', { 'data-service-region': sr },
    h('td', {}, sw, r.name), h('td'), h('td', { 'data-dial-value': sr }), h('td'), h('td'), h('td'), h('td'),
    h('td', { class: 'write' }, dial, ' ', set));
  tr.dial = dial;
  return tr;
}

function renderServices(services, cur, prev) {
  const box = $('services');
  const have = new Map([...box.children].map((b) => [b.dataset.service, b]));
  const blocks = services.map((s) => {
    let block = have.get(s.name);
    const sig = s.regions.map((r) => r.name).join(',');
    if (!block || block.sig !== sig) block = buildService(s);
    const rates = {};
    let total = 0;
    for (const r of s.regions) {
      const key = s.name + '/' + r.name;
      rates[r.name] = rate(cur, prev, 'req', key) + rate(cur, prev, 'dns', key);
      rates[r.name + '/req'] = rate(cur, prev, 'req', key);
      rates[r.name + '/dns'] = rate(cur, prev, 'dns', key);
      total += rates[r.name];
    }
    if (prev) {
      const hist = history.get(s.name) || [];
      const point = {};
      for (const r of s.regions) point[r.name] = rates[r.name];
      hist.push(point);
      while (hist.length > HISTORY) hist.shift();
      history.set(s.name, hist);
    }
    block.querySelector('h3 .muted').textContent = ` ${s.mode}, ${s.policy}${s.degraded ? ', degraded' : ''} — ${(s.hostnames || []).join(', ')}`;
    syncRows(block.tbody, s.regions, (r) => r.name, (r) => buildServiceRow(s, r), (tr, r) => {
      const c = tr.cells;
      tr.view = r;
      tr.etag = s.etag;
      setCell(c[1], r.up ? 'up' : 'down', r.up ? 'up' : 'down');
      setCell(c[2], r.dial + '%');
      setCell(c[3], r.eligible ? 'yes' : 'no');
      setCell(c[4], fmtRate(rates[r.name + '/req']));
      setCell(c[5], fmtRate(rates[r.name + '/dns']));
      setCell(c[6], total > 0 ? (100 * rates[r.name] / total).toFixed(0) + '%' : '-');
      setValue(tr.dial, r.dial);
    });
    block.querySelector('.split').replaceChildren(...s.regions.filter((r) => total > 0 && rates[r.name] > 0).map((r) => {
      const d = h('div', { title: r.name });
      d.style.width = (100 * rates[r.name] / total) + '%';
      d.style.background = colorOf(r.name);
      return d;
    }));
    block.querySelector('.chart-box').replaceChildren(chart(history.get(s.name) || [], s.regions.map((r) => r.name)));
    block.querySelector('.legend').replaceChildren(...s.regions.map((r) => {
      const sw = h('span', { class: 'swatch' });
      sw.style.background = colorOf(r.name);
      return h('span', {}, sw, r.name);
    }));
    return block;
  });
  if (blocks.length !== box.children.length || blocks.some((b, i) => box.children[i] !== b)) box.replaceChildren(...blocks);
}

function stepText(steps, i) {
  if (!Array.isArray(steps) || steps.length === 0) return '-';
  const at = steps[i] !== undefined ? ` (${steps[i]}%)` : '';
  return `${Math.min(i + 1, steps.length)}/${steps.length}${at}`;
}

function runDetail(kind, item) {
  const secs = (v) => (v === undefined || v === null ? null : `${Number(v).toFixed(1)}s`);
  if (kind === 'failover') {
    const parts = [];
    if (secs(item.rto_seconds)) parts.push('RTO ' + secs(item.rto_seconds));
    if (item.rpo_seconds !== undefined && item.rpo_seconds !== null) parts.push(item.rpo_seconds < 0 ? 'RPO unknown' : 'RPO ' + secs(item.rpo_seconds));
    return [`${item.from || '?'} → ${item.to || '?'}`, parts.join(' '), item.outcome || item.reason || ''].filter(Boolean).join(' · ');
  }
  if (kind === 'drill') {
    const parts = [];
    if (secs(item.rto_seconds)) parts.push('RTO ' + secs(item.rto_seconds));
    parts.push(`${item.errors || 0} errors of ${item.requests || 0} requests`);
    return [parts.join(', '), item.outcome || ''].filter(Boolean).join(' · ');
  }
  const g = item.guard || {};
  const guard = [];
  if (g.max_error_ratio) guard.push(`errors ≤ ${(100 * g.max_error_ratio).toFixed(1)}%`);
  if (g.max_p95 && g.max_p95 !== '0s') guard.push(`p95 ≤ ${g.max_p95}`);
  return [guard.length ? 'guard ' + guard.join(', ') : '', item.start_reason || '', item.reason || ''].filter(Boolean).join(' · ');
}

function renderRuns(runs) {
  syncRows($('runs').tBodies[0], runs, (r) => `${r.service}/${r.kind}/${r.item.id}`, ({ service, kind, item }) => {
    const abort = kind === 'shift' ? h('button', {
      type: 'button', text: 'Abort', 'data-abort': item.id,
      onclick: () => change(`Abort shift ${item.id} of ${service}? Its region's dial goes back to ${item.start_dial}%.`, (reason) =>
        api('POST', `/v1/services/${encodeURIComponent(service)}/shifts/${encodeURIComponent(item.id)}/abort`, { reason })),
    }) : null;
    const tr = h('tr', {}, h('td', { text: service }), h('td', { text: kind }), h('td', { text: item.id || '-' }),
      h('td'), h('td'), h('td'), h('td'), h('td', { class: 'write' }, abort));
    tr.abort = abort;
    return tr;
  }, (tr, { kind, item }) => {
    const c = tr.cells;
    const running = item.state === 'running';
    setCell(c[3], item.region || item.to || '-');
    setCell(c[4], item.state || '-', running ? 'forced' : 'muted');
    let step = '-';
    if (kind === 'shift') step = stepText(item.steps, item.step);
    else if (kind === 'failover' && Array.isArray(item.steps) && item.steps.length) step = `${item.step}/8 ${item.steps[item.steps.length - 1].name}`;
    setCell(c[5], step);
    setCell(c[6], runDetail(kind, item) || '-');
    if (tr.abort) tr.abort.hidden = !running;
  });
}

function renderAudit(body) {
  $('audit').tBodies[0].replaceChildren(...((body && body.entries) || []).map((e) => h('tr', {},
    h('td', { text: ago(e.time) }), h('td', { text: e.token }), h('td', { text: e.action }), h('td', { text: e.target }),
    h('td', { text: e.old || '' }), h('td', { text: e.new || '' }), h('td', { text: e.reason || '' }))));
}

// optional reads a list that not every node serves (an older version):
// a 404 leaves it empty.
async function optional(path) {
  try { return await api('GET', path); } catch (e) { if (e.status === 404) return null; throw e; }
}

async function refresh() {
  if (polling || !token) return;
  polling = true;
  try {
    const [status, svc, audit, nodes, metricsText] = await Promise.all([
      api('GET', '/v1/status'), api('GET', '/v1/services'), api('GET', '/v1/audit?limit=20'), optional('/v1/nodes'),
      fetch('/metrics').then((r) => (r.ok ? r.text() : '')),
    ]);
    const services = svc.services || [];
    const lists = await Promise.all(services.map(async (s) => {
      const name = encodeURIComponent(s.name);
      const [sh, fo, dr] = await Promise.all([
        optional(`/v1/services/${name}/shifts`), optional(`/v1/services/${name}/failovers`), optional(`/v1/services/${name}/drills`)]);
      const out = [];
      for (const item of (sh && sh.shifts) || []) out.push({ service: s.name, kind: 'shift', item });
      for (const item of (fo && fo.failovers) || []) out.push({ service: s.name, kind: 'failover', item });
      for (const item of (dr && dr.drills) || []) out.push({ service: s.name, kind: 'drill', item });
      return out;
    }));
    const cur = parseMetrics(metricsText);
    $('node').textContent = `${status.node} · ${status.version} · up ${status.uptime} · config #${status.config_generation} · ${status.ready ? 'ready' : 'not ready'}`;
    renderRegions(status);
    renderNodes(nodes);
    renderServices(services, cur, prevSample);
    renderRuns(lists.flat().sort((a, b) => (a.item.state === 'running' ? 0 : 1) - (b.item.state === 'running' ? 0 : 1)).slice(0, 30));
    renderAudit(audit);
    prevSample = cur;
    $('error').textContent = '';
    document.body.dataset.refreshed = String(Date.now());
  } catch (e) {
    if (e.status === 401) { signOut('the token was refused: ' + e.message); return; }
    $('error').textContent = 'refresh failed: ' + e.message;
  } finally {
    polling = false;
  }
}

async function signIn(t) {
  token = t;
  try {
    const me = await api('GET', '/v1/whoami');
    sessionStorage.setItem(TOKEN_KEY, token);
    canWrite = me.role === 'write';
    document.body.classList.toggle('can-write', canWrite);
    $('who').textContent = `signed in as ${me.name} (${me.role})`;
    $('login').hidden = true;
    $('main').hidden = false;
    $('logout').hidden = false;
    $('login-error').textContent = '';
    await refresh();
    clearInterval(timer);
    timer = setInterval(refresh, REFRESH_MS);
  } catch (e) {
    signOut(e.status === 401 ? 'that token was refused' : e.message);
  }
}

function signOut(msg) {
  clearInterval(timer);
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  document.body.classList.remove('can-write');
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('who').textContent = '';
  $('login-error').textContent = msg || '';
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    $('token').value = '';
    if (t) signIn(t);
  });
  $('logout').addEventListener('click', () => signOut(''));
  if (token) signIn(token); else signOut('');
});
