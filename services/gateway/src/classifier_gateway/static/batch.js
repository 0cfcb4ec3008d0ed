// Several files chosen or dropped at once: one batch (POST /v1/batches). Each accepted file is a
// job of its own in the history, whose entries this module keeps up to date until the batch is done.

import { getBatch } from './api.js';

const POLL_MS = 1000;
const FINISHED_ITEM = new Set(['succeeded', 'failed', 'canceled', 'refused', 'expired']);

/** "3 files: a.jpg, b.jpg, c.jpg" (the first few names). */
export function describeFiles(files) {
  const names = files.slice(0, 3).map((f) => f.name).join(', ');
  return `${files.length} files: ${names}${files.length > 3 ? ', …' : ''}`;
}

/** A history entry for each accepted item, as the history keeps a job. */
export function historyEntries(batch) {
  return batch.items
    .filter((item) => item.job_id)
    .map((item) => {
      const top = item.result?.predictions?.[0];
      return {
        id: item.job_id, model: batch.model, image: item.image, source: item.source, created_at: batch.created_at,
        status: item.status, top: top ? { label: top.label, score: top.score } : null, batch: batch.id,
      };
    });
}

/** The refused items, each with its reason in words. */
export function refusals(batch) {
  return batch.items.filter((item) => !item.job_id).map((item) => `“${item.image}”: ${item.error?.message ?? 'refused'}`);
}

/** "Batch of 3 files: 1 of 2 jobs finished · 1 refused". */
export function progressLine(batch) {
  const finished = batch.items.filter((item) => item.job_id && FINISHED_ITEM.has(item.status)).length;
  const parts = [`${finished} of ${batch.accepted} jobs finished`];
  if (batch.counts.failed) parts.push(`${batch.counts.failed} failed`);
  if (batch.refused) parts.push(`${batch.refused} refused`);
  const head = batch.status === 'done' ? 'Batch done' : 'Batch running';
  return `${head} (${batch.total} files): ${parts.join(' · ')}`;
}

/** Ask for the batch every second until it is done, calling `onUpdate` with each answer. */
export async function followBatch(batch, onUpdate, { signal } = {}) {
  let current = batch;
  while (current.status !== 'done') {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (signal?.aborted) return current;
    try {
      current = await getBatch(current.id, { signal });
    } catch (err) {
      if (err.name === 'AbortError') return current;
      if (err.status === 404) return current; // expired
      continue; // a passing failure: the next tick asks again
    }
    onUpdate(current);
  }
  return current;
}
