// A queued job's place in its pool's queue, in words: "12 jobs ahead · about 8 s" (the CLI says the same).

/** 8.3 -> "about 8 s", 150 -> "about 3 min", 9000 -> "about 2.5 h". */
export function durationWords(seconds) {
  if (seconds < 90) return `about ${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 90 * 60) return `about ${Math.round(seconds / 60)} min`;
  return `about ${(seconds / 3600).toFixed(1)} h`;
}

/** The words for a job document's `queue` ({ahead, estimated_wait_s}), or null without one. */
export function queueWords(position) {
  if (!position) return null;
  const { ahead } = position;
  const words = ahead === 0 ? 'next in line' : `${ahead.toLocaleString('en')} job${ahead === 1 ? '' : 's'} ahead`;
  return position.estimated_wait_s == null ? words : `${words} · ${durationWords(position.estimated_wait_s)}`;
}
