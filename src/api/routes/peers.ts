import { z } from 'zod'
import { parseBody, readJson } from '../request-body.js'
import { sendJson } from '../response.js'
import type { Route, RouteEnv } from '../router.js'

const PartitionBody = z.strictObject({ blocked: z.array(z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits')).max(1024) })

/** Connected peers: `GET /v1/peers`; and the devnet's `POST /v1/admin/partition`. */
export function peerRoutes(env: RouteEnv): Route[] {
  const { backend, maxBodyBytes } = env
  const routes: Route[] = [{ path: '/v1/peers', handlers: { GET: async (c) => sendJson(c.res, 200, { peers: backend.peers() }) } }]
  const setBlocked = backend.setBlockedPeers?.bind(backend)
  // Only a devnet daemon's backend has the partition switch: elsewhere the route does not exist (404 for any method).
  if (setBlocked !== undefined) {
    routes.push({
      path: '/v1/admin/partition',
      handlers: {
        // Devnet fault injection: refuse and cut the given peers (an empty list heals).
        POST: async (c) => {
          const body = parseBody(PartitionBody, await readJson(c.req, maxBodyBytes))
          setBlocked(body.blocked.map((k) => k.toLowerCase()))
          sendJson(c.res, 200, { blocked: body.blocked.length })
        },
      },
    })
  }
  return routes
}
