/**
 * The CORS answer headers of the DICOMweb listener (Fetch standard, "CORS
 * protocol"), for a web viewer served from another origin, e.g. OHIF.
 *
 * - An allowed origin gets `Access-Control-Allow-Origin` naming it (never
 *   `*`, so that the answer is not shared beyond it), the methods and
 *   request headers a DICOMweb client sends (`Authorization` for the bearer
 *   token, `Accept` for the media type and transfer syntax, `Content-Type`
 *   for STOW-RS), and the answer headers it may read.
 * - Any other origin, or a request without one, gets no CORS header: the
 *   browser keeps the answer from the page.
 * - Once any origin is allowed, every answer carries `Vary: Origin` (it
 *   depends on the origin: a cache must not hand one origin's answer to
 *   another) and `Cross-Origin-Resource-Policy: cross-origin`. OHIF is served with
 *   `Cross-Origin-Embedder-Policy: require-corp` (for SharedArrayBuffer), and
 *   such a page may embed a cross-origin resource that it fetches without
 *   CORS (an `<object>` or `<img>`, which send no `Origin`) only when the
 *   resource says so (OHIF's deployment docs, "CORP"). Every resource still
 *   needs the bearer token, which such an embedding cannot send.
 */
export function corsHeaders(origin: string | undefined, allowed: readonly string[]): Record<string, string> {
  if (allowed.length === 0) return {}
  const out: Record<string, string> = { vary: 'Origin', 'cross-origin-resource-policy': 'cross-origin' }
  if (origin === undefined || !(allowed.includes('*') || allowed.includes(origin))) return out
  return {
    ...out,
    'access-control-allow-origin': origin,
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': 'Authorization, Accept, Content-Type',
    'access-control-expose-headers': 'Content-Type, Content-Length, Warning',
    'access-control-max-age': '600',
  }
}
