// The Operations view: GET /v1/stats as a table of the pools of workers, refreshed while shown.

import { ApiError, describeError } from './api.js';
import { durationWords } from './queue.js';

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
let timer = null;
let loading = false;

async function getStats() {
  let response;
  try {
    response = await fetch('/v1/stats', { headers: { accept: 'application/json' } });
  } catch {
    throw new ApiError(0, 'network', 'the server could not be reached');
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = body?.error ?? {};
    throw new ApiError(response.status, error.code ?? `http_${response.status}`, error.message ?? response.statusText);
  }
  return body;
}

const count = (n) => (n == null ? '–' : n.toLocaleString('en'));
const seconds = (s) => (s == null ? '–' : `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`);
const rate = (r) => (r == null ? '–' : r.toFixed(2));

function cell(text, { num = true, alarm = false, header = false, detail = null } = {}) {
  const td = document.createElement(header ? 'th' : 'td');
  if (header) td.scope = 'row';
  td.textContent = text;
  if (detail) td.append(Object.assign(document.createElement('span'), { className: 'detail', textContent: detail }));
  if (num) td.classList.add('num');
  if (alarm) td.classList.add('alarm');
  return td;
}

function render(stats) {
  const rows = stats.pools.map((pool) => {
    const tr = document.createElement('tr');
    tr.dataset.pool = pool.pool;
    const broker = pool.broker;
    const unacked = broker?.unacked == null ? null : `${count(broker.unacked)} unacked`;
    tr.append(
      cell(pool.pool, { num: false, header: true }),
      cell(pool.models.join(', '), { num: false }),
      cell(count(pool.backlog), { detail: `${count(pool.queued)} queued · ${count(pool.running)} running` }),
      cell(broker ? `${count(broker.ready)} ready` : '–', { detail: unacked }),
      cell(count(broker?.consumers)),
      cell(count(pool.ready_workers), { alarm: pool.ready_workers === 0 && pool.backlog > 0 }),
      cell(rate(pool.jobs_per_s)),
      cell(rate(pool.busy_jobs_per_s)),
      cell(seconds(pool.p50_latency_s)),
      cell(seconds(pool.p95_latency_s)),
      cell(count(pool.failed), { alarm: pool.failed > 0 }),
      cell(count(pool.dead_lettered), { alarm: pool.dead_lettered > 0 }),
    );
    return tr;
  });
  $('operations-pools').replaceChildren(...rows);
  const minutes = stats.window_s % 60 === 0 ? `${stats.window_s / 60} min` : durationWords(stats.window_s);
  const at = new Date(stats.generated_at).toLocaleTimeString('en-GB');
  $('operations-updated').textContent = `Last ${minutes} · updated ${at}`;
  const broker = $('operations-broker');
  broker.hidden = !stats.broker_error;
  broker.textContent = stats.broker_error ? `The broker's counts are missing: ${stats.broker_error}.` : '';
}

async function refresh() {
  timer = null;
  if (loading) return;
  loading = true;
  const error = $('operations-error');
  try {
    render(await getStats());
    error.hidden = true;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    const { title, text } = describeError(err);
    error.replaceChildren(Object.assign(document.createElement('strong'), { textContent: title }), text);
    error.hidden = false;
  } finally {
    loading = false;
  }
  if (showing()) timer = setTimeout(refresh, REFRESH_MS);
}

const showing = () => window.location.hash === '#operations';

function show() {
  const operations = showing();
  $('operations').hidden = !operations;
  document.querySelector('main.layout').hidden = operations;
  for (const link of document.querySelectorAll('[data-view]')) {
    if ((link.dataset.view === 'operations') === operations) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (operations && timer === null) refresh();
  if (!operations && timer !== null) {
    clearTimeout(timer);
    timer = null;
  }
}

window.addEventListener('hashchange', show);
show();
