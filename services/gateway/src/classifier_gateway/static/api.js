// The HTTP API as the page uses it, and the words a person reads when a request fails.

export class ApiError extends Error {
  constructor(status, code, message, { details = null, retryAfter = null, requestId = null } = {}) {
    super(message);
    this.status = status; // 0 when the server could not be reached at all
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter; // seconds, from the Retry-After header
    this.requestId = requestId;
  }
}

function retryAfterSeconds(header) {
  if (!header) return null;
  if (/^\d+$/.test(header.trim())) return Number(header);
  const when = Date.parse(header); // Retry-After may also be an HTTP date
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { accept: 'application/json', ...options.headers } });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'the server could not be reached');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: an error page from a proxy in front of the API
  }
  if (!response.ok) {
    const error = body?.error ?? {};
    throw new ApiError(response.status, error.code ?? `http_${response.status}`, error.message ?? response.statusText, {
      details: error.details ?? null,
      retryAfter: retryAfterSeconds(response.headers.get('retry-after')),
      requestId: body?.request_id ?? response.headers.get('x-request-id'),
    });
  }
  return body;
}

export const listModels = () => request('/v1/models');
export const getInfo = () => request('/v1/info');
export const listImages = () => request('/v1/images');

export function submitGalleryImage(model, image) {
  return request('/v1/jobs', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, image }),
  });
}

export function submitFile(model, file) {
  const form = new FormData();
  form.append('model', model);
  form.append('file', file, file.name);
  return request('/v1/jobs', { method: 'POST', body: form });
}

/** The job; with `wait` > 0 the server holds the answer until the job finishes or `wait` seconds pass. */
export function getJob(id, { wait = 0, signal } = {}) {
  return request(`/v1/jobs/${encodeURIComponent(id)}?wait=${wait}`, { signal });
}

/** Cancel a queued job: the job as it is now (canceled), or 409 once a worker has started it. */
export function cancelJob(id) {
  return request(`/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

/** A new job from a failed or canceled one; the same Idempotency-Key if the request is sent again. */
export function retryJob(id) {
  const key = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;
  return request(`/v1/jobs/${encodeURIComponent(id)}/retry`, { method: 'POST', headers: { 'idempotency-key': key } });
}

export function formatBytes(n) {
  if (n < 1024) return `${n} bytes`;
  const [value, unit] = n < 1024 * 1024 ? [n / 1024, 'KiB'] : [n / 1024 / 1024, 'MiB'];
  return `${Number(value.toFixed(1))} ${unit}`;
}

/** Why the server would refuse this file, in words, or null; from /v1/info's published limits
 * (none known: the server alone checks). */
export function checkFile(file, info) {
  if (!info) return null;
  const formats = info.accepted_formats?.join(', ');
  if (info.max_upload_bytes && file.size > info.max_upload_bytes) {
    let [size, max] = [formatBytes(file.size), formatBytes(info.max_upload_bytes)];
    if (size === max) [size, max] = [file.size, info.max_upload_bytes].map((n) => `${n.toLocaleString('en')} bytes`);
    return {
      title: 'That file is too large',
      text: `“${file.name}” is ${size}; the limit is ${max}. Try a smaller or more compressed image.`,
    };
  }
  // an empty type means the browser does not know: the server looks at the bytes
  if (file.type && Array.isArray(info.accepted_media_types) && !info.accepted_media_types.includes(file.type)) {
    return {
      title: 'Not an image',
      text: `“${file.name}” is not an image the classifier can read.${formats ? ` Accepted formats: ${formats}.` : ''}`,
    };
  }
  return null;
}

// What a job's error code means, for a person; the server's text (a decoder's words) is a detail.
const JOB_ERROR_WORDS = {
  invalid_image: 'the image could not be read: its data is damaged or cut off',
  image_unreadable: 'the server could not read the image from its storage',
  internal_error: 'something went wrong on the server while classifying it',
};

export function describeJobError(error) {
  return JOB_ERROR_WORDS[error?.code] ?? error?.message ?? 'the worker could not classify it';
}

function retryHint(err) {
  const s = err.retryAfter;
  if (s == null) return 'Please try again in a moment.';
  return s <= 1 ? 'Please try again in a second.' : `Please try again in ${s} seconds.`;
}

/** What to tell the person, in words: {title, text}. `file` is the upload, if there was one. */
export function describeError(err, { file } = {}) {
  switch (err.status) {
    case 0:
      return {
        title: 'Cannot reach the server',
        text: 'The request did not get through. Check that the service is running and your connection works, then try again.',
      };
    case 401:
      return { title: 'An API key is needed', text: `This server only accepts jobs with an API key. (${err.message})` };
    case 404:
      return { title: 'Not found', text: `${capitalise(err.message)}.` };
    case 413: {
      const limit = err.details?.max_bytes;
      if (!file || !limit) return { title: 'That file is too large', text: `${capitalise(err.message)}.` };
      let [size, max] = [formatBytes(file.size), formatBytes(limit)];
      if (size === max) [size, max] = [file.size, limit].map((n) => `${n.toLocaleString('en')} bytes`);
      return {
        title: 'That file is too large',
        text: `“${file.name}” is ${size}; the limit is ${max}. Try a smaller or more compressed image.`,
      };
    }
    case 415: {
      const formats = Array.isArray(err.details?.accepted) ? err.details.accepted.join(', ') : null;
      const name = file ? `“${file.name}” is not an image` : 'That is not an image';
      return {
        title: 'Not an image',
        text: `${name} the classifier can read.${formats ? ` Accepted formats: ${formats}.` : ''}`,
      };
    }
    case 422:
      if (err.code === 'invalid_image') {
        const name = file ? `“${file.name}”` : 'The file';
        return {
          title: 'That image could not be read',
          text: `${name} looks like an image, but its data is damaged or cut off. Save it again or choose another file.`,
          detail: err.message,
        };
      }
      return { title: 'The request was refused', text: `${capitalise(err.message)}.` };
    case 429:
      return { title: 'The queue is full', text: `Too many jobs are waiting right now. ${retryHint(err)}` };
    case 503:
      return {
        title: 'The service is temporarily unavailable',
        text: `${capitalise(err.message)}. ${retryHint(err)}`,
      };
    default:
      if (err.status >= 500) {
        return { title: 'Server error', text: `Something went wrong on the server (${err.status}). Please try again later.` };
      }
      return { title: `Error ${err.status}`, text: `${capitalise(err.message)}.` };
  }
}

function capitalise(text) {
  const s = String(text ?? '').replace(/\.$/, '');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Several files in one request (POST /v1/batches): one job per file, each accepted or refused alone. */
export function submitFiles(model, files) {
  const form = new FormData();
  form.append('model', model);
  for (const file of files) form.append('file', file, file.name);
  return request('/v1/batches', { method: 'POST', body: form });
}

/** The batch: counts per status, and each item's job with its result once finished. */
export function getBatch(id, { signal } = {}) {
  return request(`/v1/batches/${encodeURIComponent(id)}`, { signal });
}
