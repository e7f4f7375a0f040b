/**
 * A node's fill window, "HH:MM-HH:MM" in its own IANA timezone. A window whose end is
 * earlier than its start crosses midnight ("22:00-04:00"); equal ends mean all day.
 */
export interface FillWindow {
  startMin: number;
  endMin: number;
  timezone: string;
}

export function parseWindow(text: string, timezone: string): FillWindow {
  const m = /^(\d{2}):(\d{2})-(\d{2}):(\d{2})$/.exec(text);
  if (!m) throw new Error(`fill window "${text}" must look like "02:00-06:00"`);
  const startMin = Number(m[1]) * 60 + Number(m[2]);
  const endMin = Number(m[3]) * 60 + Number(m[4]);
  if (startMin >= 24 * 60 || endMin > 24 * 60) throw new Error(`fill window "${text}" is not a time of day`);
  return { startMin, endMin: endMin % (24 * 60), timezone };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Minutes since local midnight in `timezone` at `epochMs`. */
export function localMinutes(epochMs: number, timezone: string): number {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone: timezone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timezone, f);
  }
  let hour = 0;
  let minute = 0;
  for (const part of f.formatToParts(epochMs)) {
    if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  return hour * 60 + minute;
}

export function inWindow(w: FillWindow, epochMs: number): boolean {
  const m = localMinutes(epochMs, w.timezone);
  if (w.startMin === w.endMin) return true;
  if (w.startMin < w.endMin) return m >= w.startMin && m < w.endMin;
  return m >= w.startMin || m < w.endMin;
}

/**
 * Epoch ms of the next moment the window opens (now, if it is open), to the minute.
 * Walks minute boundaries, so DST shifts in the node's timezone are handled by Intl.
 */
export function nextWindowStart(w: FillWindow, epochMs: number): number {
  if (inWindow(w, epochMs)) return epochMs;
  let t = Math.floor(epochMs / 60_000) * 60_000 + 60_000;
  for (let i = 0; i < 49 * 60; i++, t += 60_000) if (inWindow(w, t)) return t;
  return t;
}

/** Epoch ms the current window closes (undefined when closed now, or open all day). */
export function windowEnd(w: FillWindow, epochMs: number): number | undefined {
  if (!inWindow(w, epochMs) || w.startMin === w.endMin) return undefined;
  let t = Math.floor(epochMs / 60_000) * 60_000 + 60_000;
  for (let i = 0; i < 25 * 60; i++, t += 60_000) if (!inWindow(w, t)) return t;
  return undefined;
}
