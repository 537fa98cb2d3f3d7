import type { ServerResponse } from 'node:http'

/**
 * JSON text of a value. bigint is how the chain carries integers above 2^32;
 * JSON has no type for it, so it goes as decimal text.
 */
export function stringify(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))
}

/** Answers with `body` as JSON and the given status. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  })
  res.end(text)
}
