// This browser's jobs, newest first, kept in localStorage (nothing leaves the browser).

const KEY = 'classifier.history.v1';
const MAX_ENTRIES = 30;

export function loadHistory() {
  try {
    const entries = JSON.parse(localStorage.getItem(KEY) ?? '[]');
    return Array.isArray(entries) ? entries.map(withoutDeadThumb) : [];
  } catch {
    return [];
  }
}

// Only data: pictures outlive the page; a blob: URL saved by an older page would fail to load.
function withoutDeadThumb(entry) {
  if (entry?.thumb == null || String(entry.thumb).startsWith('data:')) return entry;
  const { thumb, ...rest } = entry;
  return rest;
}

function save(entries) {
  try {
    localStorage.setItem(KEY, JSON.stringify(entries.slice(0, MAX_ENTRIES)));
  } catch {
    // storage full or disabled (private mode): the history is a convenience, the job still runs
  }
}

/** Add a job at the top, or update it where it is. Returns the new list. */
export function remember(entry) {
  const entries = loadHistory();
  const index = entries.findIndex((e) => e.id === entry.id);
  if (index === -1) entries.unshift(withoutDeadThumb(entry));
  else entries[index] = withoutDeadThumb({ ...entries[index], ...entry });
  save(entries);
  return entries;
}

export function clearHistory() {
  try {
    localStorage.removeItem(KEY);
  } catch {
    // nothing to clear
  }
}
