import { z } from 'zod'
import { ApiError } from '../errors.js'
import { parseBody, readJson } from '../request-body.js'
import { sendJson } from '../response.js'
import type { Route, RouteEnv } from '../router.js'

const LeaseBody = z.strictObject({
  studyId: z.string().min(1).max(64),
  scope: z.string().min(1).max(16),
  durationMs: z.number().int().min(0),
  purpose: z.string().max(1024).default(''),
  /** A DICOM peer (AE title in dimse.peers) the study is sent to once the lease is granted. */
  deliverTo: z.string().min(1).max(16).optional(),
})
const DenyBody = z.strictObject({ reason: z.string().max(1024).default('') })

/**
 * Leases: `GET /v1/leases[?direction=incoming|outgoing]`, `POST /v1/leases`,
 * `POST /v1/leases/:id/grant|deny|revoke`.
 */
export function leaseRoutes(env: RouteEnv): Route[] {
  const { backend, maxBodyBytes } = env
  return [
    {
      path: '/v1/leases',
      handlers: {
        GET: async (c) => {
          const d = c.url.searchParams.get('direction')
          if (d !== null && d !== 'incoming' && d !== 'outgoing') throw new ApiError('API_BAD_REQUEST', 'direction must be incoming or outgoing')
          sendJson(c.res, 200, { leases: backend.leases(d ?? undefined) })
        },
        POST: async (c) => {
          const b = parseBody(LeaseBody, await readJson(c.req, maxBodyBytes))
          // An unknown peer is refused before anything goes to the ledger.
          if (b.deliverTo !== undefined) await backend.checkDimsePeer(b.deliverTo)
          const leaseId = backend.requestLease(b.studyId, { scope: b.scope, durationMs: b.durationMs, purpose: b.purpose })
          if (b.deliverTo !== undefined) await backend.deliverLease(leaseId, b.deliverTo)
          sendJson(c.res, 202, { leaseId, hash: leaseId, status: 'pending' })
        },
      },
    },
    {
      path: /^\/v1\/leases\/([^/]+)\/grant$/,
      handlers: { POST: async (c) => sendJson(c.res, 202, { hash: await backend.grantLease(c.param), status: 'pending' }) },
    },
    {
      path: /^\/v1\/leases\/([^/]+)\/deny$/,
      handlers: {
        POST: async (c) => {
          const hash = backend.denyLease(c.param, parseBody(DenyBody, await readJson(c.req, maxBodyBytes)).reason)
          sendJson(c.res, 202, { hash, status: 'pending' })
        },
      },
    },
    {
      path: /^\/v1\/leases\/([^/]+)\/revoke$/,
      handlers: { POST: async (c) => sendJson(c.res, 202, { hash: backend.revokeLease(c.param), status: 'pending' }) },
    },
  ]
}
