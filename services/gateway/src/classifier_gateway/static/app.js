// The page: choose a model and an image, submit, follow the job live, show the top-5, keep a history.

import {
  checkFile, describeError, describeJobError, formatBytes, getInfo, getJob, listImages, listModels, submitFile, submitFiles,
  submitGalleryImage,
} from './api.js';
import { describeFiles, followBatch, historyEntries, progressLine, refusals } from './batch.js';
import { clearHistory, loadHistory, remember } from './history.js';
import { queueWords } from './queue.js';
import { renderJobActions, renderJobLinks } from './job-actions.js';

const DEFAULT_MODEL = 'efficientnet_lite0';
// The server answers as soon as the job finishes; coming back every few seconds also shows queued -> running.
const LONG_POLL_S = 3;
const FINISHED = new Set(['succeeded', 'failed', 'canceled']);
const HISTORY_POLL_MS = 2000;

const $ = (id) => document.getElementById(id);
const el = {
  form: $('job-form'), model: $('model'), modelState: $('model-state'), modelInfo: $('model-info'),
  dropzone: $('dropzone'), file: $('file'), camera: $('camera'), preview: $('upload-preview'), previewImg: $('upload-img'),
  previewName: $('upload-name'), previewClear: $('upload-clear'),
  gallery: $('gallery'), galleryCount: $('gallery-count'), selection: $('selection'), submit: $('submit'),
  result: $('result'), error: $('error'), empty: $('result-empty'), job: $('job'),
  jobThumb: $('job-thumb'), jobImage: $('job-image'), jobModel: $('job-model'), jobId: $('job-id'), jobUrl: $('job-url'),
  status: $('status'), predictions: $('predictions'), meta: $('job-meta'), jobLinks: $('job-links'), jobActions: $('job-actions'),
  history: $('history'), historyEmpty: $('history-empty'), historyClear: $('history-clear'), batchStatus: $('batch-status'),
};

const state = {
  models: [],
  choice: null, // {kind: 'gallery', name}, {kind: 'file', file, url} or {kind: 'files', files}
  shownId: null,
  follow: null, // AbortController of the long-poll in progress
  thumbs: new Map(), // job id -> small data: URL picture of an upload
  busy: false, // a submission is on its way
  followId: null, // the job long-polled for the result panel
  historyTimer: null,
  gone: new Set(), // history jobs the server no longer has
  info: null, // GET /v1/info: the upload limit and accepted formats
};

/** "n01531178_goldfinch.JPEG" -> "goldfinch": the gallery names start with the ImageNet synset id. */
function labelFor(name) {
  return name.replace(/\.[^.]+$/, '').replace(/^n\d{8}_/, '').replaceAll('_', ' ');
}

function percent(score) {
  const p = score * 100;
  if (p >= 10) return `${p.toFixed(1)}%`;
  if (p >= 0.01) return `${p.toFixed(2)}%`;
  return '<0.01%';
}

// ---- errors

function showError(err, context) {
  if (err?.name === 'AbortError') return;
  if (!('status' in err)) throw err; // a bug in this page, not a failed request
  showMessage(describeError(err, context));
}

/** An error in words, with the server's own text, if any, as a detail. */
function showMessage({ title, text, detail = null }) {
  const parts = [
    Object.assign(document.createElement('strong'), { textContent: title }),
    Object.assign(document.createElement('span'), { textContent: ` ${text}` }),
  ];
  if (detail) parts.push(Object.assign(document.createElement('small'), { className: 'error-detail', textContent: `Details: ${detail}` }));
  el.error.replaceChildren(...parts);
  el.error.hidden = false;
}

/** After an action that failed, show where the words are: on a phone they are far below the button. */
function revealError() {
  const narrow = isNarrow();
  el.error.focus({ preventScroll: true });
  el.error.scrollIntoView({ behavior: narrow ? 'smooth' : 'auto', block: narrow ? 'center' : 'nearest' });
}

function isNarrow() {
  return window.matchMedia('(max-width: 900px)').matches;
}

function clearError() {
  el.error.hidden = true;
  el.error.replaceChildren();
}

// ---- model

/** A model can be asked for when its weights are here and a worker pool serves it. */
const servable = (m) => m.available && m.pool !== null;

function renderModels(models) {
  state.models = models;
  const available = models.filter(servable);
  el.model.replaceChildren(
    ...models.map((m) => {
      let label = m.name;
      if (!m.available) label = `${m.name} (weights not installed)`;
      else if (m.pool === null) label = `${m.name} (no worker pool serves it)`;
      const option = new Option(label, m.name);
      option.disabled = !servable(m);
      return option;
    }),
  );
  const preferred = available.find((m) => m.name === DEFAULT_MODEL) ?? available[0];
  if (preferred) el.model.value = preferred.name;
  el.model.disabled = available.length === 0;
  renderModelState();
}

function renderModelState() {
  const model = state.models.find((m) => m.name === el.model.value && servable(m));
  el.modelState.hidden = !model;
  if (!model) {
    el.modelInfo.textContent = 'No model has its weights installed on this server.';
    return updateSubmit();
  }
  el.modelState.textContent = model.loaded ? 'loaded' : 'not loaded';
  el.modelState.className = `badge ${model.loaded ? 'ok' : 'warn'}`;
  const facts = `${model.architecture} · ${model.input_size}×${model.input_size} input · ${model.num_classes} classes`;
  const pool = model.pool === 'default' ? '' : ` (worker pool “${model.pool}”)`;
  el.modelInfo.textContent = model.loaded
    ? `${facts}. A worker${pool} has it in memory.`
    : `${facts}. No running worker${pool} has it loaded right now: a job waits in the queue until one starts.`;
  updateSubmit();
}

// ---- image choice

function renderGallery(images) {
  el.galleryCount.textContent = `(${images.length} photos)`;
  el.gallery.replaceChildren(
    ...images.map((image) => {
      const tile = document.createElement('label');
      tile.className = 'tile';
      tile.title = image.name;
      const radio = Object.assign(document.createElement('input'), { type: 'radio', name: 'image', value: image.name });
      const img = Object.assign(document.createElement('img'), {
        src: image.url, alt: '', loading: 'lazy', decoding: 'async', width: image.width, height: image.height,
      });
      const caption = Object.assign(document.createElement('span'), { className: 'caption', textContent: labelFor(image.name) });
      const check = Object.assign(document.createElement('span'), { className: 'check', textContent: '✓' });
      check.setAttribute('aria-hidden', 'true'); // not part of the photo's name
      tile.append(radio, img, check, caption);
      return tile;
    }),
  );
}

function chooseGalleryImage(name) {
  dropFile();
  state.choice = { kind: 'gallery', name };
  el.selection.textContent = `Gallery photo: ${labelFor(name)}`;
  updateSubmit();
}

function chooseFile(file) {
  if (!file) return;
  dropFile();
  clearError();
  // the server's published limits, checked before a byte is sent
  const refusal = checkFile(file, state.info);
  if (refusal) {
    el.file.value = '';
    el.camera.value = '';
    showMessage(refusal);
    revealError();
    return;
  }
  for (const radio of el.gallery.querySelectorAll('input:checked')) radio.checked = false;
  const url = URL.createObjectURL(file);
  state.choice = { kind: 'file', file, url };
  el.preview.hidden = false;
  el.dropzone.classList.add('has-file');
  el.preview.classList.remove('no-preview');
  el.previewImg.src = url;
  el.previewName.textContent = `${file.name} (${formatBytes(file.size)})`;
  el.selection.textContent = `Your file: ${file.name}`;
  updateSubmit();
}

/** Several files at once: sent together as one batch. Those the server would refuse are left out here. */
function chooseFiles(list) {
  const files = [...(list ?? [])];
  if (files.length <= 1) {
    chooseFile(files[0]);
    return;
  }
  dropFile();
  clearError();
  const refused = files.map((file) => [file, checkFile(file, state.info)]).filter(([, why]) => why);
  const accepted = files.filter((file) => !refused.some(([f]) => f === file));
  if (refused.length) {
    showMessage({
      title: accepted.length ? `${refused.length} of ${files.length} files left out` : 'None of these files can be sent',
      text: refused.map(([, why]) => why.text).join(' '),
    });
    revealError();
  }
  if (accepted.length === 0) {
    el.file.value = '';
    return;
  }
  if (accepted.length === 1) {
    chooseFile(accepted[0]);
    return;
  }
  for (const radio of el.gallery.querySelectorAll('input:checked')) radio.checked = false;
  state.choice = { kind: 'files', files: accepted };
  el.selection.textContent = describeFiles(accepted);
  updateSubmit();
}

function dropFile() {
  if (state.choice?.kind === 'files') {
    state.choice = null;
    el.file.value = '';
    el.selection.textContent = 'No image chosen yet.';
    updateSubmit();
    return;
  }
  if (state.choice?.kind !== 'file') return;
  URL.revokeObjectURL(state.choice.url);
  state.choice = null;
  el.file.value = '';
  el.camera.value = '';
  el.preview.hidden = true;
  el.dropzone.classList.remove('has-file');
  el.previewImg.removeAttribute('src');
  el.selection.textContent = 'No image chosen yet.';
  updateSubmit();
}

function updateSubmit() {
  const model = state.models.find((m) => m.name === el.model.value);
  el.submit.disabled = !(model?.available && state.choice);
}

/** A small JPEG of an upload for the history list (an object URL would not survive a reload). */
async function thumbnailOf(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const scale = 96 / Math.max(bitmap.width, bitmap.height);
    const canvas = Object.assign(document.createElement('canvas'), {
      width: Math.round(bitmap.width * scale), height: Math.round(bitmap.height * scale),
    });
    canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL('image/jpeg', 0.7);
  } catch {
    return null; // not an image the browser can decode either
  }
}

// ---- submitting and following a job

/** While a request is out the button stays focusable (aria-disabled): disabling it would drop
 * keyboard focus to the page's body. */
function setBusy(busy) {
  state.busy = busy;
  if (busy) el.submit.setAttribute('aria-disabled', 'true');
  else el.submit.removeAttribute('aria-disabled');
  el.submit.textContent = busy ? 'Submitting…' : 'Classify';
}

async function submit(event) {
  event.preventDefault();
  if (state.busy || el.submit.disabled) return;
  const model = el.model.value;
  const choice = state.choice;
  clearError();
  stopFollowing();
  setBusy(true);
  if (choice.kind === 'files') {
    await submitBatch(model, choice.files);
    return;
  }
  const file = choice.kind === 'file' ? choice.file : null;
  let job;
  try {
    job = file ? await submitFile(model, file) : await submitGalleryImage(model, choice.name);
  } catch (err) {
    hideJob(); // refused: there is no ticket to show
    showError(err, { file });
    revealError();
    return;
  } finally {
    setBusy(false);
    updateSubmit();
  }
  if (file) {
    // only a picture made here is kept: an object URL would be dead after a reload
    const thumb = await thumbnailOf(file);
    if (thumb) state.thumbs.set(job.id, thumb);
  }
  showJob(job);
  if (isNarrow()) el.result.scrollIntoView({ behavior: 'smooth', block: 'start' });
  follow(job.id); // not awaited: the page stays usable while the job waits and runs
}

/** Several files: one batch; each accepted file joins the history as a job, kept up to date. */
async function submitBatch(model, files) {
  let batch;
  try {
    batch = await submitFiles(model, files);
  } catch (err) {
    hideJob();
    if (err.code === 'batch_refused') {
      const items = err.details?.items ?? [];
      showMessage({
        title: 'None of these files was accepted',
        text: items.map((item) => `“${item.image}”: ${item.error?.message}.`).join(' '),
      });
    } else showError(err);
    revealError();
    return;
  } finally {
    setBusy(false);
    updateSubmit();
  }
  const thumbs = await Promise.all(files.map(thumbnailOf));
  for (const item of batch.items) {
    if (item.job_id && thumbs[item.index]) state.thumbs.set(item.job_id, thumbs[item.index]);
  }
  const refused = refusals(batch);
  if (refused.length) {
    showMessage({ title: `${refused.length} of ${batch.total} files refused`, text: `${refused.join('. ')}.` });
    revealError();
  }
  dropFile();
  const update = (current) => {
    for (const entry of historyEntries(current).reverse()) { // the first file ends on top
      const thumb = state.thumbs.get(entry.id);
      remember(thumb ? { ...entry, thumb } : entry);
    }
    el.batchStatus.hidden = false;
    el.batchStatus.textContent = progressLine(current);
    renderHistory();
  };
  update(batch);
  followBatch(batch, update); // not awaited: the page stays usable while the jobs run
}

function stopFollowing() {
  state.follow?.abort();
  state.follow = null;
  state.followId = null;
}

/** Long-poll the shown job until it finishes, showing every change. */
async function follow(id) {
  const controller = new AbortController();
  state.follow = controller;
  state.followId = id;
  refreshHistorySoon(); // the job shown before may still be unfinished
  try {
    let job;
    do {
      job = await getJob(id, { wait: LONG_POLL_S, signal: controller.signal });
      if (controller.signal.aborted) return;
      showJob(job);
    } while (!FINISHED.has(job.status));
  } catch (err) {
    if (err.name === 'AbortError') return;
    showError(err);
    if (err.status === 0) {
      el.status.textContent = 'Lost contact with the server while waiting. The job may still finish: open it from the history to check again.';
    }
  } finally {
    if (state.follow === controller) {
      state.follow = null;
      state.followId = null;
    }
  }
}

/** Every unfinished job of the history other than the followed one is asked about every few
 * seconds, one request at a time, until none is left. */
function refreshHistorySoon(delay = HISTORY_POLL_MS) {
  if (state.historyTimer === null) state.historyTimer = setTimeout(refreshHistory, delay);
}

const unfinished = () => loadHistory().filter((e) => !FINISHED.has(e.status) && !state.gone.has(e.id) && e.id !== state.followId);

async function refreshHistory() {
  for (const entry of unfinished()) {
    try {
      const job = await getJob(entry.id);
      remember(summary(job));
      if (job.id === state.shownId && state.followId !== job.id) showJob(job);
      else renderHistory();
    } catch (err) {
      if (err.status === 404) state.gone.add(entry.id); // expired: it keeps its last known status
    }
  }
  state.historyTimer = null;
  if (unfinished().length > 0) refreshHistorySoon();
}

const STATUS_WORDS = {
  queued: 'Queued: waiting for a worker…',
  running: 'Running: a worker is classifying the image…',
  canceled: 'Canceled before a worker started it.',
};

function showJob(job) {
  state.shownId = job.id;
  el.empty.hidden = true;
  el.job.hidden = false;
  el.job.dataset.status = job.status;

  el.jobImage.textContent = job.source === 'gallery' ? labelFor(job.image) : job.image;
  el.jobModel.textContent = job.model;
  el.jobId.textContent = job.id;
  el.jobUrl.textContent = job.status_url;
  el.jobUrl.href = job.status_url;
  const thumb = thumbFor(job);
  el.jobThumb.hidden = !thumb;
  if (thumb && el.jobThumb.getAttribute('src') !== thumb) el.jobThumb.src = thumb;

  renderSteps(job);

  const predictions = job.result?.predictions ?? [];
  const top = predictions[0];
  if (job.status === 'succeeded' && top) el.status.textContent = `Succeeded: ${top.label} (${percent(top.score)}).`;
  else if (job.status === 'failed') el.status.textContent = `Failed: ${describeJobError(job.error)}.`;
  else if (job.status === 'queued' && job.queue) el.status.textContent = `Queued: ${queueWords(job.queue)}.`;
  else el.status.textContent = STATUS_WORDS[job.status] ?? job.status;

  renderPredictions(predictions);
  el.meta.textContent = metaLine(job);
  renderActions(job);
  remember(summary(job));
  renderHistory();
}

/** Cancel and Retry for the shown job, and its link to its retry (job-actions.js). */
function renderActions(job) {
  const hadFocus = el.jobActions.contains(document.activeElement);
  renderJobLinks(el.jobLinks, job, { open: showFromHistory });
  renderJobActions(el.jobActions, job, {
    done: (next, action) => {
      clearError();
      if (action === 'retry') {
        stopFollowing();
        showJob(next);
        follow(next.id); // not awaited, as after Classify
      } else {
        showJob(next);
      }
      // the pressed button is gone: keep keyboard focus in the result, not on the page's body
      (el.jobActions.querySelector('button') ?? el.result).focus({ preventScroll: !isNarrow() });
    },
    failed: (err) => {
      showError(err);
      revealError();
      getJob(job.id).then((current) => { if (state.shownId === current.id) showJob(current); }).catch(() => {});
    },
  });
  if (hadFocus && !el.jobActions.contains(document.activeElement)) {
    (el.jobActions.querySelector('button') ?? el.result).focus({ preventScroll: true });
  }
}

/** Queued, Running, and how it ended: a job canceled in the queue never ran. */
function renderSteps(job) {
  const finished = FINISHED.has(job.status);
  const ran = job.status === 'succeeded' || job.started_at != null;
  const steps = Object.fromEntries([...el.job.querySelectorAll('.steps li')].map((li) => [li.dataset.step, li]));
  steps.queued.classList.toggle('done', job.status !== 'queued');
  steps.queued.classList.toggle('current', job.status === 'queued');
  steps.running.classList.toggle('done', finished && ran);
  steps.running.classList.toggle('current', job.status === 'running');
  steps.running.classList.toggle('skipped', finished && !ran);
  steps.done.classList.toggle('done', finished);
  steps.done.textContent = { failed: 'Failed', canceled: 'Canceled' }[job.status] ?? 'Done';
}

function summary(job) {
  const top = job.result?.predictions?.[0];
  const entry = {
    id: job.id, model: job.model, image: job.image, source: job.source, created_at: job.created_at,
    status: job.status, top: top ? { label: top.label, score: top.score } : null,
  };
  if (state.thumbs.has(job.id)) entry.thumb = state.thumbs.get(job.id);
  return entry;
}

function hideJob() {
  state.shownId = null;
  el.job.hidden = true;
  el.empty.hidden = true;
  renderHistory();
}

function thumbFor(job) {
  if (job.source === 'gallery') return `/v1/images/${encodeURIComponent(job.image)}`;
  return state.thumbs.get(job.id) ?? loadHistory().find((e) => e.id === job.id)?.thumb ?? null;
}

function renderPredictions(predictions) {
  el.predictions.hidden = predictions.length === 0;
  el.predictions.replaceChildren(
    ...predictions.map((p) => {
      const row = document.createElement('li');
      row.className = 'prediction';
      const label = Object.assign(document.createElement('span'), { className: 'label', textContent: p.label });
      const bar = Object.assign(document.createElement('span'), { className: 'bar' });
      bar.setAttribute('aria-hidden', 'true');
      const fill = document.createElement('span');
      fill.style.width = `${Math.max(0.5, p.score * 100)}%`;
      bar.append(fill);
      const score = Object.assign(document.createElement('span'), { className: 'score', textContent: percent(p.score) });
      row.append(label, bar, score);
      return row;
    }),
  );
}

function metaLine(job) {
  const parts = [];
  if (job.result) {
    parts.push(`model version ${job.result.model_version}`);
    const ms = job.result.inference_ms;
    if (job.result.cached) parts.push(ms != null ? `cached result (originally ${ms.toFixed(0)} ms)` : 'cached result');
    else if (ms != null) parts.push(`inference ${ms.toFixed(0)} ms`);
  }
  if (job.finished_at && job.created_at) {
    const ms = Date.parse(job.finished_at) - Date.parse(job.created_at);
    parts.push(`done ${ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`} after submission`);
  }
  if (job.attempts > 1) parts.push(`${job.attempts} attempts`);
  if (job.status === 'failed' && job.error?.message && describeJobError(job.error) !== job.error.message) {
    parts.push(`details: ${job.error.message}`);
  }
  return parts.join(' · ');
}

// ---- history

function renderHistory() {
  const entries = loadHistory();
  el.historyEmpty.hidden = entries.length > 0;
  el.historyClear.disabled = entries.length === 0;
  el.history.replaceChildren(
    ...entries.map((entry) => {
      const item = document.createElement('li');
      const button = Object.assign(document.createElement('button'), { type: 'button', className: 'history-item' });
      button.dataset.id = entry.id;
      if (entry.id === state.shownId) button.setAttribute('aria-current', 'true');
      const src = entry.source === 'gallery' ? `/v1/images/${encodeURIComponent(entry.image)}` : entry.thumb;
      const thumb = src
        ? Object.assign(document.createElement('img'), { src, alt: '', loading: 'lazy', width: 40, height: 30 })
        : Object.assign(document.createElement('span'), { className: 'thumb-placeholder' });
      const text = document.createElement('span');
      text.className = 'history-text';
      const name = entry.source === 'gallery' ? labelFor(entry.image) : entry.image;
      const outcome = entry.top ? `${entry.top.label} ${percent(entry.top.score)}` : entry.status;
      const when = new Date(entry.created_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      text.append(
        Object.assign(document.createElement('span'), { className: 'history-name', textContent: name }),
        Object.assign(document.createElement('span'), { className: 'history-sub', textContent: `${outcome} · ${entry.model} · ${when}` }),
      );
      const pill = Object.assign(document.createElement('span'), { className: `pill ${entry.status}`, textContent: entry.status });
      button.append(thumb, text, pill);
      item.append(button);
      return item;
    }),
  );
}

async function showFromHistory(id) {
  clearError();
  stopFollowing();
  try {
    const job = await getJob(id);
    showJob(job);
    el.result.focus({ preventScroll: !isNarrow() });
    if (!FINISHED.has(job.status)) await follow(id);
  } catch (err) {
    hideJob();
    if (err.status === 404) {
      showError({ ...err, message: 'this job is no longer on the server: results are kept for a limited time' });
    } else {
      showError(err);
    }
    revealError();
  }
}

// ---- wiring

el.model.addEventListener('change', renderModelState);
el.gallery.addEventListener('change', (e) => chooseGalleryImage(e.target.value));
el.file.addEventListener('change', () => chooseFiles(el.file.files));
el.camera.addEventListener('change', () => chooseFile(el.camera.files[0]));
el.previewClear.addEventListener('click', dropFile);
el.previewImg.addEventListener('error', () => el.preview.classList.add('no-preview'));
el.form.addEventListener('submit', submit);
el.history.addEventListener('click', (e) => {
  const button = e.target.closest('.history-item');
  if (button) showFromHistory(button.dataset.id);
});
el.historyClear.addEventListener('click', () => {
  clearHistory();
  renderHistory();
});

for (const type of ['dragenter', 'dragover']) {
  el.dropzone.addEventListener(type, (e) => {
    e.preventDefault();
    el.dropzone.classList.add('dragging');
  });
}
for (const type of ['dragleave', 'drop']) {
  el.dropzone.addEventListener(type, () => el.dropzone.classList.remove('dragging'));
}
el.dropzone.addEventListener('drop', (e) => {
  e.preventDefault();
  chooseFiles(e.dataTransfer.files);
});
// A file dropped beside the drop zone would make the browser leave the page to open it.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

async function start() {
  renderHistory();
  refreshHistorySoon(0); // jobs still waiting when the page was last open
  getInfo().then((info) => { state.info = info; }).catch(() => {}); // without it, the server checks alone
  const [models, images] = await Promise.allSettled([listModels(), listImages()]);
  if (models.status === 'fulfilled') renderModels(models.value);
  else {
    el.model.replaceChildren(new Option('Models could not be loaded'));
    showError(models.reason);
  }
  if (images.status === 'fulfilled') renderGallery(images.value);
  else {
    el.gallery.replaceChildren(Object.assign(document.createElement('p'), { className: 'hint', textContent: 'The gallery could not be loaded.' }));
    showError(images.reason);
  }
  document.body.dataset.ready = 'true';
}

start();
