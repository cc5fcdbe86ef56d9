// app.js - the Antenna console: signs in with a token, shows the pages the token's role may use.
// Every data call goes to antennad's /v1 API with "Authorization: Bearer"; the token lives in
// sessionStorage only (no cookie, so no cross-site request can use it). Never writes data into
// the page as HTML (textContent only), never loads anything from another origin.

const TOKEN_KEY = 'antenna.token';
const REFRESH_MS = 3000;
const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'timeout', 'node_fail', 'preempted',
  'boot_fail', 'deadline', 'out_of_memory', 'lost']);
const READERS = ['staff', 'admin', 'auditor'];

// Pages: who sees them in the menu (the API still decides; a page reached anyway shows its 403).
const PAGES = [
  { id: 'jobs', title: 'My jobs', roles: ['user', 'manager', 'staff', 'admin'], render: pageJobs },
  { id: 'queue', title: 'Queue', roles: READERS, render: pageQueue },
  { id: 'quotas', title: 'Partners & quotas', roles: ['user', 'manager', ...READERS], render: pageQuotas },
  { id: 'usage', title: 'Usage', roles: ['user', 'manager', ...READERS], render: pageUsage },
  { id: 'statements', title: 'Statements', roles: ['manager', ...READERS], render: pageStatements },
  { id: 'audit', title: 'Audit trail', roles: ['admin', 'auditor'], render: pageAudit },
];

let me = null;       // GET /v1/me
let timer = null;    // the live refresh of the current page
let charts = [];     // uPlot instances of the current page

// --- small helpers ------------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function fmtHours(v) {
  if (v === null || v === undefined) return 'unlimited';
  const n = Number(v);
  return n !== 0 && Math.abs(n) < 0.1 ? n.toFixed(4) : n.toFixed(2); // a short test job still shows

}

function fmtTime(s) {
  return s ? s.replace('T', ' ').replace('Z', '') : '';
}

function currentPeriod() {
  return new Date().toISOString().slice(0, 7);
}

function nextMonth(period) {
  const [y, m] = period.split('-').map(Number);
  return m === 12 ? `${y + 1}-01` : `${y}-${String(m + 1).padStart(2, '0')}`;
}

function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

function table(headers, rows, caption) {
  const thead = h('thead', {}, h('tr', {}, headers.map((c) =>
    h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label))));
  const tbody = h('tbody', {}, rows.map((r) => h('tr', {}, headers.map((c, i) => {
    const v = r[i];
    return h('td', { class: c.num ? 'num' : c.wrap ? 'wrap' : null }, v);
  }))));
  return h('div', { class: 'table-wrap' }, h('table', {}, caption ? h('caption', { class: 'visually-hidden' }, caption) : null, thead, tbody));
}

function alertBox(kind, text, extra) {
  return h('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : null, 'data-alert': kind }, text, extra || null);
}

function say(text, kind = 'ok') {
  const s = document.getElementById('status');
  s.replaceChildren(text ? alertBox(kind, text) : '');
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function explain(err) {
  if (err instanceof ApiError) {
    if (err.status === 403) return `Not allowed for your role (403 ${err.code}): ${err.message}`;
    if (err.status === 401) return `Your token was refused (401): ${err.message}`;
    return `Error ${err.status} ${err.code}: ${err.message}`;
  }
  return `Cannot reach antennad: ${err.message}`;
}

async function api(method, path, body, accept) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ''}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit', cache: 'no-store', redirect: 'error',
  });
  if (!res.ok) {
    let code = 'error', message = res.statusText;
    try {
      const e = await res.json();
      code = e.error.code; message = e.error.message;
    } catch (_) { /* not JSON */ }
    if (res.status === 401 && me) signOut(`Signed out (401): ${message}`);
    throw new ApiError(res.status, code, message);
  }
  if (accept === 'bytes') return { bytes: new Uint8Array(await res.arrayBuffer()), headers: res.headers };
  return res.json();
}

function destroyCharts() {
  for (const c of charts) c.destroy();
  charts = [];
}

// A uPlot chart in `el` as wide as its box. `cats`: category labels for a bar chart.
function chart(el, { title, series, data, cats, yLabel, time }) {
  if (!window.uPlot) {
    el.append(h('p', { class: 'muted' }, 'The chart library did not load.'));
    return null;
  }
  const width = Math.max(280, el.clientWidth || 600);
  const opts = {
    title, width, height: 240,
    scales: {
      x: cats ? { time: false, range: [-0.6, Math.max(cats.length - 0.4, 0.6)] } : { time: !!time },
      y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.05 : 1] }, // from 0: no exaggeration
    },
    axes: [
      cats ? { splits: () => cats.map((_, i) => i), values: (u, s) => s.map((i) => cats[i] ?? ''), grid: { show: false } } : {},
      { label: yLabel || '', size: 60 },
    ],
    series: [{}, ...series.map((s) => ({ width: 2, ...s,
      paths: cats ? window.uPlot.paths.bars({ size: [0.6, 80] }) : s.paths }))],
    legend: { show: series.length > 1 },
  };
  const u = new window.uPlot(opts, data, el);
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', title);
  charts.push(u);
  return u;
}

window.addEventListener('resize', () => {
  for (const c of charts) {
    const w = c.root.parentElement ? c.root.parentElement.clientWidth : 0;
    if (w > 0) c.setSize({ width: Math.max(280, w), height: 240 });
  }
});

// Re-renders `box` with `build()` keeping the keyboard focus on the control with the same key.
function rerender(box, nodes) {
  const key = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
  box.replaceChildren(...nodes);
  if (key) {
    const again = box.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

function can(role) {
  return me && role.includes(me.role);
}

// --- sign-in and navigation -------------------------------------------------------------

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    me = await api('GET', '/v1/me');
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    say(err instanceof ApiError && err.status === 401 ? 'That token was refused: check it and try again.' : explain(err), 'error');
    return false;
  }
  document.getElementById('who-text').textContent = `${me.name} (${me.role}, ${me.partner})`;
  document.getElementById('who').hidden = false;
  const nav = document.getElementById('nav');
  nav.replaceChildren(...PAGES.filter((p) => can(p.roles)).map((p) =>
    h('a', { href: `#/${p.id}`, 'data-page': p.id }, p.title)));
  nav.hidden = false;
  say('');
  return true;
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (message) sessionStorage.setItem('antenna.flash', message); // shown after the reload
  me = null;
  location.hash = '';
  location.reload();
}

function route() {
  if (timer) { clearInterval(timer); timer = null; }
  destroyCharts();
  const view = document.getElementById('view');
  if (!me) return;
  const allowed = PAGES.filter((p) => can(p.roles));
  const id = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  const page = PAGES.find((p) => p.id === id) || allowed[0];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === page.id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const box = h('section', { class: 'page', 'data-page': page.id, 'aria-labelledby': 'page-title' },
    h('h2', { id: 'page-title' }, page.title));
  view.replaceChildren(box);
  document.title = `${page.title} - Antenna console`;
  if (!can(page.roles))
    box.append(h('p', { class: 'muted' }, `This page is not for the ${me.role} role; antennad decides:`));
  page.render(box).catch((err) => box.append(alertBox('error', explain(err))));
}

// --- jobs ---------------------------------------------------------------------------------

function stateBadge(s) {
  return h('span', { class: `state state-${s}` }, s);
}

function jobsFilters(onChange, withPartner, initialState) {
  const state = h('select', { name: 'state', id: 'filter-state' },
    h('option', { value: '' }, 'any'), h('option', { value: 'active' }, 'active (not ended)'),
    ['queued', 'pending', 'running', 'completed', 'failed', 'cancelled', 'timeout'].map((s) => h('option', { value: s }, s)));
  state.value = initialState || '';
  const name = h('input', { name: 'name', id: 'filter-name', type: 'search', placeholder: 'part of a name' });
  const partner = withPartner ? h('input', { name: 'partner', id: 'filter-partner', type: 'search', placeholder: 'e.g. ulb' }) : null;
  const form = h('form', { role: 'search', 'aria-label': 'Filter jobs', onsubmit: (e) => { e.preventDefault(); onChange(); } },
    field('State', state), field('Name contains', name), partner ? field('Partner', partner) : null);
  for (const el of [state, name, partner]) if (el) el.addEventListener('input', onChange);
  const match = (j) => {
    const st = state.value;
    if (st === 'active' && TERMINAL.has(j.state)) return false;
    if (st && st !== 'active' && j.state !== st) return false;
    if (name.value && !j.name.toLowerCase().includes(name.value.toLowerCase())) return false;
    if (partner && partner.value && j.partner !== partner.value.trim()) return false;
    return true;
  };
  return { form, match };
}

function jobRow(j, { mine, onOutput, onCancel, showPartner }) {
  const actions = h('span', {},
    h('button', { type: 'button', class: 'secondary', 'data-key': `out-${j.id}`, onclick: () => onOutput(j),
      'aria-label': `Output of job ${j.id}` }, 'Output'),
    mine && !TERMINAL.has(j.state) && !j.cancel_requested && can(['user', 'manager', 'staff', 'admin'])
      ? h('button', { type: 'button', class: 'danger', 'data-key': `cancel-${j.id}`, onclick: () => onCancel(j),
        'aria-label': `Cancel job ${j.id}` }, 'Cancel') : null);
  const state = j.restarts > 0 // Slurm reran it (--requeue): each run is charged
    ? h('span', {}, stateBadge(j.state), ` requeued ${j.restarts}×`) : stateBadge(j.state);
  return [j.id, j.name, showPartner ? j.partner : j.user, state,
    j.reason || (j.cancel_requested && !TERMINAL.has(j.state) ? 'cancel requested' : ''), j.gpus ? `${j.gpus}${j.gpu_type ? ' ' + j.gpu_type : ''}` : '0',
    fmtTime(j.submitted_at), j.slurm_job_id ?? '', actions];
}

async function jobsPage(box, { queue }) {
  const out = h('div', { id: 'output-panel' });
  const list = h('div', { id: 'jobs-list', 'aria-live': 'off' });
  const updated = h('p', { class: 'muted', id: 'jobs-updated' });
  let jobs = [];
  const draw = () => {
    let rows = jobs.filter(f.match);
    if (!queue) rows = rows.filter((j) => j.user === me.name);
    const headers = [{ label: 'Id', num: true }, { label: 'Name' }, { label: queue ? 'Partner' : 'User' }, { label: 'State' },
      { label: 'Waits on' }, { label: 'GPUs' }, { label: 'Submitted (UTC)' }, { label: 'Slurm id', num: true }, { label: 'Actions' }];
    const nodes = [];
    if (queue) {
      const by = {};
      for (const j of jobs) if (!TERMINAL.has(j.state)) by[j.partner] = (by[j.partner] || 0) + 1;
      nodes.push(h('p', { id: 'queue-summary' }, Object.keys(by).length
        ? Object.entries(by).map(([p, n]) => `${p}: ${n} active`).join(' · ') : 'No active job.'));
    }
    nodes.push(rows.length ? table(headers, rows.map((j) => jobRow(j, { mine: j.user === me.name, onOutput: showOutput, onCancel: cancel, showPartner: queue })), 'Jobs')
      : h('p', { class: 'muted', 'data-empty': 'jobs' }, 'No job matches.'));
    rerender(list, nodes);
  };
  const f = jobsFilters(draw, queue, queue ? 'active' : '');
  const load = async () => {
    try {
      jobs = (await api('GET', '/v1/jobs?limit=1000')).jobs;
      updated.textContent = `Live: refreshed every ${REFRESH_MS / 1000} s, last at ${new Date().toLocaleTimeString()}.`;
      draw();
    } catch (err) {
      rerender(list, [alertBox('error', explain(err))]);
      if (err instanceof ApiError && err.status === 403 && timer) { clearInterval(timer); timer = null; }
    }
  };
  let outputJob = null;
  async function showOutput(j) {
    outputJob = j.id;
    const pre = h('pre', { class: 'output', tabindex: '0', 'aria-label': `Output of job ${j.id}` });
    const close = h('button', { type: 'button', class: 'secondary', onclick: () => { outputJob = null; out.replaceChildren(); } }, 'Close output');
    out.replaceChildren(h('div', { class: 'card' }, h('h3', {}, `Output of job ${j.id} (${j.name})`), pre, close));
    await refreshOutput(pre, j.id);
    pre.focus();
  }
  // Follows the output from the byte offset read so far (as `antenna logs --follow` does).
  async function refreshOutput(pre, id) {
    if (!pre.follow || pre.follow.id !== id) pre.follow = { id, offset: 0, text: '', dec: new TextDecoder() };
    const f = pre.follow;
    try {
      for (let i = 0; i < 16; i++) { // bounded chunks (X-Antenna-Output-*): a few per refresh
        const r = await api('GET', `/v1/jobs/${id}/output?offset=${f.offset}`, undefined, 'bytes');
        pre.dataset.state = r.headers.get('X-Antenna-Job-State') || '';
        f.text += f.dec.decode(r.bytes, { stream: true });
        const next = Number(r.headers.get('X-Antenna-Output-Next-Offset'));
        f.offset = Number.isFinite(next) && next >= f.offset ? next : f.offset + r.bytes.length;
        if (r.bytes.length === 0 || r.headers.get('X-Antenna-Output-End') !== 'false') break;
      }
      pre.textContent = f.text || '(no output yet)';
    } catch (err) {
      pre.textContent = explain(err);
    }
  }
  async function cancel(j) {
    if (!window.confirm(`Cancel job ${j.id} (${j.name})?`)) return;
    try {
      await api('DELETE', `/v1/jobs/${j.id}`);
      say(`Job ${j.id} cancel requested.`);
      await load();
    } catch (err) {
      say(explain(err), 'error');
    }
  }
  box.append(f.form, updated, list, out);
  await load();
  timer = setInterval(() => {
    load();
    const pre = out.querySelector('pre');
    if (outputJob && pre && !TERMINAL.has(pre.dataset.state)) refreshOutput(pre, outputJob);
  }, REFRESH_MS);
}

function pageJobs(box) { return jobsPage(box, { queue: false }); }
function pageQueue(box) { return jobsPage(box, { queue: true }); }

// --- partners and quotas -----------------------------------------------------------------

// The burn-down of one partner's GPU budget over `period`: what is left after each day's charges,
// and the straight line of the spending rate so far up to the period's end.
function burnDown(q, days, period) {
  const [y, m] = period.split('-').map(Number);
  const start = Date.UTC(y, m - 1, 1) / 1000, end = Date.UTC(y, m, 1) / 1000;
  const budget = q.gpu_hours;
  const now = Math.min(Date.now() / 1000, end);
  const used = new Map(days.map((r) => [r.key, r.gpu_hours]));
  const xs = [], left = [];
  let cum = 0;
  for (let t = start; t < end && t <= now; t += 86400) {
    const key = new Date(t * 1000).toISOString().slice(0, 10);
    cum += used.get(key) || 0;
    xs.push(t + 86400 <= now ? t + 86400 : now);
    left.push(budget - cum);
  }
  const spent = q.used_gpu_hours + q.held_gpu_hours;
  const elapsed = Math.max(now - start, 3600);
  const rate = spent / elapsed; // GPU-hours per second so far
  const leftNow = budget - spent;
  const runOut = rate > 0 ? now + leftNow / rate : Infinity;
  return { start, end, now, xs, left, budget, rate, leftNow, runOut, short: runOut < end };
}

async function pageQuotas(box) {
  const period = currentPeriod();
  const quotas = (await api('GET', `/v1/quotas?period=${period}`)).quotas;
  const wrap = h('div', { class: 'grid', id: 'quota-cards' });
  box.append(h('p', { class: 'muted' }, `Period ${period} (UTC). Left = budget − used − held by running jobs.`), wrap);
  for (const q of quotas) {
    const card = h('article', { class: 'card', 'data-partner': q.partner, 'aria-labelledby': `q-${q.partner}` },
      h('h3', { id: `q-${q.partner}` }, q.partner),
      h('div', { class: 'kpis' },
        [['budget', q.gpu_hours], ['used', q.used_gpu_hours], ['held', q.held_gpu_hours], ['left', q.left_gpu_hours]]
          .map(([k, v]) => h('div', { class: 'kpi', 'data-kpi': k }, h('b', {}, fmtHours(v)), h('span', {}, `GPU-hours ${k}`)))),
      h('p', { class: 'muted' }, `max GPUs at once: ${q.max_gpus ?? 'unlimited'} · per user: ${q.user_max_gpus ?? 'unlimited'} · max walltime: ${q.max_walltime_minutes === null ? 'unlimited' : q.max_walltime_minutes + ' min'} · queued cap: ${q.max_queued_jobs ?? 'unlimited'}`));
    wrap.append(card);
    if (q.gpu_hours === null || !q.set) {
      card.append(h('p', { class: 'muted' }, q.set ? 'The GPU budget is unlimited: no burn-down.' : 'No quota set for this period.'));
      continue;
    }
    let days = [];
    try {
      days = (await api('GET', `/v1/usage?by=day&partner=${encodeURIComponent(q.partner)}&from=${period}-01&to=${nextMonth(period)}-01`)).rows;
    } catch (err) {
      card.append(alertBox('error', explain(err)));
    }
    const b = burnDown(q, days, period);
    if (b.short) {
      card.append(alertBox('warn', `At this rate (${(b.rate * 86400).toFixed(2)} GPU-hours a day) the budget runs out on ${new Date(b.runOut * 1000).toISOString().slice(0, 10)}, before the period ends.`));
    } else {
      card.append(h('p', { 'data-trend': 'ok' }, b.rate > 0
        ? `At this rate the budget lasts the period (${(b.leftNow - b.rate * (b.end - b.now)).toFixed(2)} GPU-hours left at its end).`
        : 'Nothing spent yet this period.'));
    }
    const el = h('div', { class: 'chart', 'data-chart': 'burndown' });
    card.append(el);
    const xs = [b.start, ...b.xs, b.end];
    const actual = [b.budget, ...b.left, null];
    const trend = xs.map((t) => (t >= b.now - 1 ? Math.max(b.leftNow - b.rate * (t - b.now), b.rate > 0 ? -b.budget : 0) : null));
    trend[xs.length - 2] = b.leftNow;
    chart(el, { title: `${q.partner}: GPU-hours left`, time: true, yLabel: 'GPU-hours',
      series: [{ label: 'left', stroke: '#1f4e79' }, { label: 'trend', stroke: '#e36209', dash: [6, 4], spanGaps: true }],
      data: [xs, actual, trend] });
  }
  if (can(['staff', 'admin'])) box.append(quotaForm(quotas, period));
}

function quotaForm(quotas, period) {
  const partner = h('select', { name: 'partner', id: 'quota-partner', required: true },
    quotas.map((q) => h('option', { value: q.partner }, q.partner)));
  const num = (name, step) => h('input', { name, id: `quota-${name}`, type: 'number', min: '0', step: step || '1', placeholder: 'unchanged' });
  const inputs = { gpu_hours: num('gpu_hours', 'any'), max_gpus: num('max_gpus'), user_max_gpus: num('user_max_gpus'),
    max_queued_jobs: num('max_queued_jobs'), max_walltime_minutes: num('max_walltime_minutes') };
  const msg = h('div', { id: 'quota-msg', 'aria-live': 'polite' });
  const form = h('form', { id: 'quota-form', 'aria-labelledby': 'quota-form-title', onsubmit: async (e) => {
    e.preventDefault();
    const body = {};
    for (const [k, el] of Object.entries(inputs)) if (el.value !== '') body[k] = k === 'gpu_hours' ? Number(el.value) : parseInt(el.value, 10);
    if (Object.keys(body).length === 0) { msg.replaceChildren(alertBox('error', 'Fill in at least one field.')); return; }
    try {
      const q = await api('PATCH', `/v1/quotas/${encodeURIComponent(partner.value)}/${period}`, body);
      say(`Quota of ${q.partner} for ${q.period} saved: ${fmtHours(q.gpu_hours)} GPU-hours.`);
      route();
    } catch (err) {
      msg.replaceChildren(alertBox('error', explain(err)));
    }
  } },
  field('Partner', partner), field('GPU-hours budget', inputs.gpu_hours), field('Max GPUs at once', inputs.max_gpus),
  field('Max GPUs per user', inputs.user_max_gpus), field('Max queued jobs', inputs.max_queued_jobs),
  field('Max walltime (minutes)', inputs.max_walltime_minutes), h('button', { type: 'submit' }, 'Set quota'));
  return h('section', { class: 'card' }, h('h3', { id: 'quota-form-title' }, `Set a quota for ${period}`),
    h('p', { class: 'muted' }, 'Empty fields keep their value. It takes effect at once on the queue.'), form, msg);
}

// --- usage ----------------------------------------------------------------------------------

function csv(rows, by) {
  const esc = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  const lines = [[by, 'gpu_hours', 'cpu_hours', 'jobs', 'gpu_seconds', 'cpu_seconds'].join(',')];
  for (const r of rows) lines.push([r.key, r.gpu_hours, r.cpu_hours, r.jobs, r.gpu_seconds, r.cpu_seconds].map(esc).join(','));
  return lines.join('\n') + '\n';
}

async function pageUsage(box) {
  const by = h('select', { name: 'by', id: 'usage-by' }, ['partner', 'user', 'category', 'day', 'gpu-type', 'month'].map((b) => h('option', { value: b }, b)));
  const from = h('input', { type: 'date', name: 'from', id: 'usage-from', value: `${currentPeriod()}-01` });
  const to = h('input', { type: 'date', name: 'to', id: 'usage-to' });
  const out = h('div', { id: 'usage-out' });
  const load = async () => {
    destroyCharts();
    let q = `/v1/usage?by=${by.value}`;
    if (from.value) q += `&from=${from.value}`;
    if (to.value) q += `&to=${to.value}`;
    try {
      const u = await api('GET', q);
      const el = h('div', { class: 'chart', 'data-chart': 'usage' });
      const dl = h('button', { type: 'button', class: 'secondary', id: 'usage-csv', onclick: () => {
        const a = h('a', { href: URL.createObjectURL(new Blob([csv(u.rows, u.by)], { type: 'text/csv' })), download: `usage-by-${u.by}.csv` });
        document.body.append(a); a.click(); a.remove();
      } }, 'Download CSV');
      out.replaceChildren(el, table([{ label: u.by }, { label: 'GPU-hours', num: true }, { label: 'CPU-hours', num: true }, { label: 'Jobs', num: true }],
        [...u.rows.map((r) => [r.key, fmtHours(r.gpu_hours), fmtHours(r.cpu_hours), r.jobs]),
          ['total', fmtHours(u.total.gpu_hours), fmtHours(u.total.cpu_hours), u.total.jobs]], 'Usage'), dl);
      if (u.rows.length === 0) { el.replaceWith(h('p', { class: 'muted' }, 'No charge in this range.')); return; }
      if (u.by === 'day') {
        chart(el, { title: 'GPU-hours charged per day', time: true, yLabel: 'GPU-hours',
          series: [{ label: 'GPU-hours', stroke: '#1f4e79', fill: 'rgba(31,78,121,.15)' }],
          data: [u.rows.map((r) => Date.parse(`${r.key}T00:00:00Z`) / 1000), u.rows.map((r) => r.gpu_hours)] });
      } else {
        chart(el, { title: `GPU-hours by ${u.by}`, cats: u.rows.map((r) => r.key), yLabel: 'GPU-hours',
          series: [{ label: 'GPU-hours', stroke: '#1f4e79', fill: 'rgba(31,78,121,.5)' }],
          data: [u.rows.map((_, i) => i), u.rows.map((r) => r.gpu_hours)] });
      }
    } catch (err) {
      out.replaceChildren(alertBox('error', explain(err)));
    }
  };
  box.append(h('form', { 'aria-label': 'Usage query', onsubmit: (e) => { e.preventDefault(); load(); } },
    field('Group by', by), field('From (UTC, inclusive)', from), field('To (exclusive)', to), h('button', { type: 'submit' }, 'Show')), out);
  await load();
}

// --- statements ---------------------------------------------------------------------------

async function pageStatements(box) {
  let partners = [me.partner];
  if (can(READERS)) {
    try { partners = (await api('GET', '/v1/partners')).partners.map((p) => p.name); } catch (_) { /* keep own */ }
  }
  const partner = h('select', { name: 'partner', id: 'stmt-partner' }, partners.map((p) => h('option', { value: p }, p)));
  const month = h('input', { type: 'month', name: 'month', id: 'stmt-month', value: currentPeriod(), required: true });
  const out = h('div', { id: 'statement' });
  const load = async () => {
    destroyCharts();
    try {
      const r = await api('GET', `/v1/reports/${encodeURIComponent(partner.value)}/${month.value}`);
      const q = r.quota;
      const el = h('div', { class: 'chart', 'data-chart': 'statement' });
      out.replaceChildren(h('article', { class: 'card' },
        h('h3', {}, `Statement of ${r.partner} for ${r.month}`),
        h('p', { class: 'muted' }, `${r.description || ''} · generated ${fmtTime(r.generated_at)} UTC`),
        h('div', { class: 'kpis' }, [['charged', r.total.gpu_hours], ['budget', q.gpu_hours], ['left', q.left_gpu_hours]]
          .map(([k, v]) => h('div', { class: 'kpi', 'data-kpi': k }, h('b', {}, fmtHours(v)), h('span', {}, `GPU-hours ${k}`))),
          h('div', { class: 'kpi' }, h('b', {}, r.total.jobs), h('span', {}, 'jobs charged'))),
        el,
        h('h4', {}, 'By user'),
        table([{ label: 'User' }, { label: 'Category' }, { label: 'Jobs', num: true }, { label: 'GPU-hours', num: true }],
          r.by_user.map((u) => [u.user, u.category, u.jobs, fmtHours(u.gpu_hours)]), 'By user'),
        h('h4', {}, 'Jobs'),
        h('div', { id: 'statement-jobs' }, table([{ label: 'Id', num: true }, { label: 'Name' }, { label: 'User' }, { label: 'GPUs', num: true }, { label: 'State' },
          { label: 'Started (UTC)' }, { label: 'Ended (UTC)' }, { label: 'GPU-hours', num: true }],
        r.jobs.map((j) => [j.id, j.name, j.user, j.gpus, j.state, fmtTime(j.started_at), fmtTime(j.ended_at), fmtHours(j.charge_gpu_hours)]), 'Jobs')),
        h('button', { type: 'button', class: 'secondary', onclick: () => window.print() }, 'Print')));
      const days = [...r.by_day].sort((a, b) => a.day.localeCompare(b.day));
      if (days.length) {
        chart(el, { title: 'GPU-hours charged by day', cats: days.map((d) => d.day.slice(5)), yLabel: 'GPU-hours',
          series: [{ label: 'GPU-hours', stroke: '#1f4e79', fill: 'rgba(31,78,121,.5)' }],
          data: [days.map((_, i) => i), days.map((d) => d.gpu_hours)] });
      } else {
        el.replaceWith(h('p', { class: 'muted' }, 'No charge in this month.'));
      }
    } catch (err) {
      out.replaceChildren(alertBox('error', explain(err)));
    }
  };
  box.append(h('form', { 'aria-label': 'Statement', onsubmit: (e) => { e.preventDefault(); load(); } },
    field('Partner', partner), field('Month', month), h('button', { type: 'submit' }, 'Show statement')), out);
  await load();
}

// --- audit trail --------------------------------------------------------------------------

async function pageAudit(box) {
  const verify = h('div', { id: 'audit-verify' });
  const actor = h('input', { type: 'search', name: 'actor', id: 'audit-actor' });
  const action = h('input', { type: 'search', name: 'action', id: 'audit-action', placeholder: 'job. or quota.set' });
  const since = h('input', { type: 'date', name: 'since', id: 'audit-since' });
  const out = h('div', { id: 'audit-out' });
  const load = async () => {
    const p = new URLSearchParams({ limit: '200' });
    if (actor.value) p.set('actor', actor.value.trim());
    if (action.value) p.set('action', action.value.trim());
    if (since.value) p.set('since', since.value);
    try {
      const e = (await api('GET', `/v1/audit?${p}`)).entries;
      out.replaceChildren(h('p', { class: 'muted' }, `${e.length} entries (newest last, at most 200).`),
        table([{ label: 'Seq', num: true }, { label: 'At (UTC)' }, { label: 'Actor' }, { label: 'Partner' }, { label: 'Action' }, { label: 'Details', wrap: true }],
          e.map((x) => [x.seq, fmtTime(x.at), x.actor, x.partner, x.action, JSON.stringify(x.details)]), 'Audit entries'));
    } catch (err) {
      out.replaceChildren(alertBox('error', explain(err)));
    }
  };
  box.append(verify, h('form', { 'aria-label': 'Filter the audit trail', onsubmit: (e) => { e.preventDefault(); load(); } },
    field('Actor', actor), field('Action (a prefix ends with .)', action), field('Since', since), h('button', { type: 'submit' }, 'Filter')), out);
  try {
    const v = await api('GET', '/v1/audit/verify');
    verify.replaceChildren(v.ok ? alertBox('ok', `Audit chain verified: ${v.entries} entries intact (head ${v.head_seq}).`)
      : alertBox('error', `Audit chain BROKEN at entry ${v.first_bad}: ${v.problem}`));
  } catch (err) {
    verify.replaceChildren(alertBox('error', explain(err)));
  }
  await load();
}

// --- start ----------------------------------------------------------------------------------

document.getElementById('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = document.getElementById('token');
  const tok = input.value.trim();
  if (await signIn(tok)) { input.value = ''; route(); document.getElementById('view').focus(); }
});
document.getElementById('signout').addEventListener('click', () => signOut());
window.addEventListener('hashchange', route);

(async () => {
  const tok = sessionStorage.getItem(TOKEN_KEY);
  const flash = sessionStorage.getItem('antenna.flash');
  sessionStorage.removeItem('antenna.flash');
  if (tok && (await signIn(tok))) route();
  else {
    if (flash) say(flash, 'error');
    document.getElementById('token').focus();
  }
})();
