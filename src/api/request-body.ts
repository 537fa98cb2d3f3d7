import type { IncomingMessage } from 'node:http'
import type { z } from 'zod'
import { ApiError } from './errors.js'

/** Default bound on a request body (8 MiB). */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024

/** Reads at most `max` bytes of body; past that, stops buffering and throws API_BODY_TOO_LARGE. */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const tooLarge = (): ApiError => new ApiError('API_BODY_TOO_LARGE', `request body exceeds ${max} bytes`)
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > max) return Promise.reject(tooLarge())
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let n = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      n += chunk.length
      if (n > max) {
        cleanup()
        chunks.length = 0
        reject(tooLarge())
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => {
      cleanup()
      resolve(Buffer.concat(chunks, n))
    }
    const onError = (err: Error): void => {
      cleanup()
      reject(new ApiError('API_BAD_REQUEST', 'request body aborted', undefined, { cause: err }))
    }
    const onClose = (): void => onError(new Error('closed before end'))
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

/** Reads a body of at most `max` bytes as UTF-8 JSON; throws API_BAD_REQUEST if it is not. */
export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const buf = await readBody(req, max)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf)
  } catch {
    throw new ApiError('API_BAD_REQUEST', 'request body is not UTF-8')
  }
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new ApiError('API_BAD_REQUEST', 'request body is not valid JSON')
  }
}

/** Checks a parsed body against its schema; throws API_BAD_REQUEST naming the first problem. */
export function parseBody<T>(schema: z.ZodType<T>, json: unknown): T {
  const r = schema.safeParse(json)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  const where = issue === undefined || issue.path.length === 0 ? '' : `${issue.path.join('.')}: `
  throw new ApiError('API_BAD_REQUEST', `invalid request body: ${where}${issue?.message ?? 'invalid'}`)
}
