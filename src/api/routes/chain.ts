import { setImmediate as nextTurn } from 'node:timers/promises'
import { z } from 'zod'
import { fromHex } from '../../util/index.js'
import type { TxStatus } from '../views.js'
import { ApiError, type ApiErrorBody } from '../errors.js'
import { itemError } from '../error-response.js'
import { parseBody, readJson } from '../request-body.js'
import { sendJson } from '../response.js'
import type { Ctx, Route, RouteEnv } from '../router.js'

/** Most transactions one `POST /v1/txs` batch may carry. */
export const MAX_BATCH_TXS = 10_000
/** Longest `?wait=` a client may ask for on `GET /v1/txs/:hash`. */
export const MAX_WAIT_MS = 60_000

// Batches yield to the event loop this often so one big batch cannot starve other requests.
const BATCH_YIELD_EVERY = 100
const HASH_RE = /^[0-9a-f]{64}$/
const HEIGHT_RE = /^(?:0|[1-9][0-9]{0,15})$/
const WAIT_RE = /^[0-9]{1,5}$/

const HexTx = z.string().regex(/^(?:[0-9a-fA-F]{2})+$/, 'expected non-empty hex')
const SubmitBody = z
  .strictObject({ tx: HexTx.optional(), txs: z.array(HexTx).max(MAX_BATCH_TXS).optional() })
  .refine((b) => (b.tx === undefined) !== (b.txs === undefined), 'expected exactly one of "tx" or "txs"')
const NoteBody = z.strictObject({ text: z.string() })

/**
 * The chain: `GET /v1/status`, `POST /v1/txs` (one or a batch),
 * `POST /v1/notes`, `GET /v1/txs/:hash[?wait=ms]`, `GET /v1/blocks/:ref`,
 * `GET /v1/keys/:key/nonce`.
 */
export function chainRoutes(env: RouteEnv): Route[] {
  const { backend, maxBodyBytes, logger } = env

  const postTxs = async (c: Ctx): Promise<void> => {
    const body = parseBody(SubmitBody, await readJson(c.req, maxBodyBytes))
    if (body.tx !== undefined) {
      const hash = backend.submitTx(fromHex(body.tx))
      sendJson(c.res, 202, { hash, status: 'pending' })
      return
    }
    const list = body.txs ?? []
    const results: ({ hash: string } | ApiErrorBody)[] = []
    for (let i = 0; i < list.length; i++) {
      if (i > 0 && i % BATCH_YIELD_EVERY === 0) {
        await nextTurn()
        // Client gone or server stopping: submit no more; what was admitted stays admitted.
        if (c.signal.aborted) return
      }
      try {
        results.push({ hash: backend.submitTx(fromHex(list[i] ?? '')) })
      } catch (err) {
        results.push({ error: itemError(err, { method: c.req.method, path: c.url.pathname }, logger) })
      }
    }
    sendJson(c.res, 200, { results })
  }

  const postNote = async (c: Ctx): Promise<void> => {
    const body = parseBody(NoteBody, await readJson(c.req, maxBodyBytes))
    const hash = backend.submitNote(body.text)
    sendJson(c.res, 202, { hash, status: 'pending' })
  }

  const getTx = async (c: Ctx): Promise<void> => {
    const hash = c.param.toLowerCase()
    if (!HASH_RE.test(hash)) throw new ApiError('API_BAD_REQUEST', 'transaction hash must be 64 hex digits')
    const wait = c.url.searchParams.get('wait')
    let status: TxStatus
    if (wait === null) {
      status = await backend.txStatus(hash)
    } else {
      const ms = Number(wait)
      if (!WAIT_RE.test(wait) || ms > MAX_WAIT_MS) {
        throw new ApiError('API_BAD_REQUEST', `wait must be an integer number of ms in [0, ${MAX_WAIT_MS}]`)
      }
      status = await backend.waitTx(hash, ms, c.signal)
    }
    sendJson(c.res, 200, status)
  }

  const getBlock = async (c: Ctx): Promise<void> => {
    const raw = c.param
    let ref: string
    if (raw === 'head') ref = raw
    else if (HEIGHT_RE.test(raw) && Number.isSafeInteger(Number(raw))) ref = raw
    else if (HASH_RE.test(raw.toLowerCase())) ref = raw.toLowerCase()
    else throw new ApiError('API_BAD_REQUEST', 'block reference must be "head", a height or a 64-hex hash')
    const block = await backend.block(ref)
    if (block === undefined) throw new ApiError('API_NOT_FOUND', `no block ${ref}`)
    sendJson(c.res, 200, block)
  }

  return [
    { path: '/v1/status', handlers: { GET: async (c) => sendJson(c.res, 200, backend.status()) } },
    { path: '/v1/txs', handlers: { POST: postTxs } },
    { path: '/v1/notes', handlers: { POST: postNote } },
    { path: /^\/v1\/keys\/([^/]+)\/nonce$/, handlers: { GET: async (c) => sendJson(c.res, 200, { nonce: backend.nonce(c.param) }) } },
    { path: /^\/v1\/txs\/([^/]+)$/, handlers: { GET: getTx } },
    { path: /^\/v1\/blocks\/([^/]+)$/, handlers: { GET: getBlock } },
  ]
}
