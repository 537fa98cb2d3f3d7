import { z } from 'zod'
import { parseBody, readJson } from '../request-body.js'
import { sendJson } from '../response.js'
import type { Route, RouteEnv } from '../router.js'

const Hex32 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits')
const OrgVoteBody = z.discriminatedUnion('action', [
  z.strictObject({
    action: z.literal('admit'),
    id: z.string().min(1).max(63),
    name: z.string().min(1).max(256),
    role: z.enum(['authority', 'member']),
    signKey: Hex32,
    encKey: Hex32,
    addrs: z.array(z.string().max(256)).max(16).default([]),
  }),
  z.strictObject({ action: z.literal('remove'), id: z.string().min(1).max(63) }),
  z.strictObject({ action: z.literal('rekey'), id: z.string().min(1).max(63), signKey: Hex32, encKey: Hex32 }),
  z.strictObject({
    action: z.literal('params'),
    params: z
      .record(z.string().max(64), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER))
      .refine((p) => Object.keys(p).length > 0, 'name at least one parameter'),
  }),
])

/** The organization registry and the chain parameters: `GET /v1/orgs`, `POST /v1/orgs/votes`. */
export function orgRoutes(env: RouteEnv): Route[] {
  const { backend, maxBodyBytes } = env
  return [
    { path: '/v1/orgs', handlers: { GET: async (c) => sendJson(c.res, 200, backend.orgs()) } },
    {
      path: '/v1/orgs/votes',
      handlers: {
        POST: async (c) => {
          const body = parseBody(OrgVoteBody, await readJson(c.req, maxBodyBytes))
          const hash = backend.voteOrg(body)
          sendJson(c.res, 202, { hash, status: 'pending' })
        },
      },
    },
  ]
}
