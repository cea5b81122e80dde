// Counting API requests from the apiserver's own books: apiserver_request_total
// by verb and resource, read before and after a window and subtracted.
import type { Api } from './api.js';

/** `${verb} ${resource}[/${subresource}]` → requests served so far. */
export type RequestCounts = Map<string, number>;

export const WRITE_VERBS = ['POST', 'PUT', 'PATCH', 'DELETE', 'DELETECOLLECTION', 'APPLY'] as const;
/** The resources the idle and rotation targets are about. */
export const WATCHED_RESOURCES = ['secrets', 'configmaps', 'events'] as const;

const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

export function parseRequestCounts(text: string): RequestCounts {
  const counts: RequestCounts = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const close = line.lastIndexOf('}');
    const labels = Object.fromEntries([...line.slice(0, close).matchAll(LABEL)].map((m) => [m[1], m[2]]));
    const value = Number(line.slice(close + 1).trim());
    if (!labels.verb || !labels.resource || !Number.isFinite(value)) continue;
    const resource = labels.subresource ? `${labels.resource}/${labels.subresource}` : labels.resource;
    const key = `${labels.verb} ${resource}`;
    counts.set(key, (counts.get(key) ?? 0) + value);
  }
  return counts;
}

export async function readRequestCounts(api: Api): Promise<RequestCounts> {
  const res = await api.call<string>('GET', '/metrics');
  return parseRequestCounts(res.body);
}

export interface WriteSummary {
  /** Writes per resource (all write verbs), only resources that saw any. */
  byResource: Record<string, number>;
  /** Writes per `${verb} ${resource}`, only non-zero. */
  byVerb: Record<string, number>;
  /** Writes to secrets, configmaps and events. */
  watchedTotal: number;
  /** Every write, any resource (includes leases, status patches, the bench's own setup if any). */
  total: number;
}

export function writesBetween(before: RequestCounts, after: RequestCounts): WriteSummary {
  const byResource: Record<string, number> = {};
  const byVerb: Record<string, number> = {};
  let total = 0;
  let watchedTotal = 0;
  for (const [key, value] of after) {
    const [verb, resource] = key.split(' ') as [string, string];
    if (!(WRITE_VERBS as readonly string[]).includes(verb)) continue;
    const delta = value - (before.get(key) ?? 0);
    if (delta <= 0) continue;
    byVerb[key] = delta;
    byResource[resource] = (byResource[resource] ?? 0) + delta;
    total += delta;
    if ((WATCHED_RESOURCES as readonly string[]).includes(resource)) watchedTotal += delta;
  }
  return { byResource, byVerb, watchedTotal, total };
}
