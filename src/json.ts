/** JSON has no Infinity or NaN: write them as strings so reports stay valid JSON. */
export function jsonNumbers(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}
