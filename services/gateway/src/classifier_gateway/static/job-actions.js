// What a person can do with the shown job: cancel it while queued, retry it once failed or
// canceled, and move between a job and its retry.

import { cancelJob, retryJob } from './api.js';

const RETRYABLE = new Set(['failed', 'canceled']);

function linkButton(text, onClick) {
  const button = Object.assign(document.createElement('button'), { type: 'button', className: 'link-button', textContent: text });
  button.addEventListener('click', onClick);
  return button;
}

/** The job's links to its retry or the job it retries: "Retry of job 1a2b3c4d", "Retried as job 5e6f7a8b". */
export function renderJobLinks(container, job, { open }) {
  const parts = [];
  for (const [words, id] of [['Retry of job', job.retry_of], ['Retried as job', job.retried_by]]) {
    if (!id) continue;
    const line = document.createElement('span');
    line.className = 'job-link';
    const button = linkButton(id.slice(0, 8), () => open(id));
    button.setAttribute('aria-label', `${words} ${id}: show it`);
    button.dataset.jobId = id;
    line.append(`${words} `, button);
    parts.push(line);
  }
  container.replaceChildren(...parts);
  container.hidden = parts.length === 0;
}

/** Cancel for a queued job; Retry for a failed or canceled gallery job not retried yet. Each
 * button is disabled while its request is on its way; `done(job)` gets the job to show next. */
export function renderJobActions(container, job, { done, failed }) {
  const buttons = [];
  if (job.status === 'queued') {
    buttons.push(actionButton('Cancel job', 'cancel', () => cancelJob(job.id), done, failed));
  } else if (RETRYABLE.has(job.status) && !job.retried_by) {
    if (job.source === 'gallery') {
      buttons.push(actionButton('Retry', 'retry', () => retryJob(job.id), done, failed));
    } else {
      buttons.push(Object.assign(document.createElement('p'), {
        className: 'hint', textContent: 'An uploaded image is not kept: choose the file again to retry it.',
      }));
    }
  }
  container.replaceChildren(...buttons);
  container.hidden = buttons.length === 0;
}

function actionButton(text, action, call, done, failed) {
  const button = Object.assign(document.createElement('button'), { type: 'button', className: 'secondary', textContent: text });
  button.dataset.action = action;
  button.addEventListener('click', async () => {
    // aria-disabled, not disabled: the button keeps keyboard focus while the request is out
    if (button.getAttribute('aria-disabled') === 'true') return;
    button.setAttribute('aria-disabled', 'true');
    try {
      done(await call(), action);
    } catch (err) {
      button.removeAttribute('aria-disabled');
      failed(err, action);
    }
  });
  return button;
}
