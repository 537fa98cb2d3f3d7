import { z } from 'zod'
import { parseBody, readJson } from '../request-body.js'
import { sendJson } from '../response.js'
import type { Route, RouteEnv } from '../router.js'

// Loose bounds on the shape only: the node checks the values (a DICOM LO value, a patient key) and says which field is wrong.
const LinkBody = z.strictObject({
  patientId: z.string().max(1024),
  issuer: z.string().max(1024).default(''),
  patientKey: z.string().min(1).max(4096),
  replace: z.boolean().default(false),
})
const UnlinkBody = z.strictObject({ patientId: z.string().max(1024), issuer: z.string().max(1024).default('') })

/**
 * Patient links (Patient ID to patient key, kept on this node only):
 * `GET /v1/patient-links`, `POST /v1/patient-links`, `POST /v1/patient-links/unlink`.
 * The Patient ID travels in the body, never in the path: request lines are
 * logged with their path.
 */
export function patientLinkRoutes(env: RouteEnv): Route[] {
  const { backend, maxBodyBytes } = env
  return [
    {
      path: '/v1/patient-links',
      handlers: {
        GET: async (c) => sendJson(c.res, 200, { links: backend.patientLinks() }),
        POST: async (c) => {
          const b = parseBody(LinkBody, await readJson(c.req, maxBodyBytes))
          sendJson(c.res, 200, await backend.linkPatient(b))
        },
      },
    },
    {
      path: '/v1/patient-links/unlink',
      handlers: {
        POST: async (c) => {
          const b = parseBody(UnlinkBody, await readJson(c.req, maxBodyBytes))
          await backend.unlinkPatient(b.patientId, b.issuer)
          sendJson(c.res, 200, { unlinked: true })
        },
      },
    },
  ]
}
