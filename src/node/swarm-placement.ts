import { placementOrder, type OrgRecord, type StudyRecord } from '../chain/index.js'
import type { OrgKeys } from '../crypto/index.js'
import type { P2PNode } from '../p2p/index.js'
import { equalBytes, toHex } from '../util/index.js'
import type { ChainService } from './chain-service.js'
import type { SwarmOpts } from './swarm.js'

/**
 * Who should hold each study: the placement order (chain/placement.ts) and,
 * from this node's view of which organizations are connected, who replaces
 * a holder gone longer than `repairAfterMs`.
 */
export class SwarmPlacement {
  readonly #opts: Pick<SwarmOpts, 'repairAfterMs'>
  readonly #chain: ChainService
  readonly #p2p: P2PNode
  readonly #keys: OrgKeys
  readonly #clock: () => number
  readonly #startedAt: number
  /** Organization key (hex) -> since when it is disconnected (absent: connected). */
  readonly #downSince = new Map<string, number>()

  /** `clock`: local time in ms (Date.now by default; tests move it themselves). */
  constructor(opts: Pick<SwarmOpts, 'repairAfterMs'>, modules: { chain: ChainService; p2p: P2PNode; keys: OrgKeys; clock?: () => number }) {
    this.#opts = opts
    this.#chain = modules.chain
    this.#p2p = modules.p2p
    this.#keys = modules.keys
    this.#clock = modules.clock ?? Date.now
    this.#startedAt = this.#clock()
    const p2p = this.#p2p
    p2p.on('peer:connect', (key) => this.#downSince.delete(toHex(key)))
    p2p.on('peer:disconnect', (key) => {
      const hex = toHex(key)
      if (!p2p.peers().some((p) => toHex(p.publicKey) === hex)) this.#downSince.set(hex, this.#clock())
    })
  }

  /** This node's organization, once admitted. */
  selfOrg(): OrgRecord | undefined {
    return this.#chain.orgByKey(this.#keys.signer.publicKey)
  }

  /** Whether this node considers organization `org` gone long enough to be replaced. */
  isDown(org: OrgRecord, connected: ReadonlySet<string> = this.#connectedKeys()): boolean {
    if (equalBytes(org.signKey, this.#keys.signer.publicKey)) return false
    const hex = toHex(org.signKey)
    if (connected.has(hex)) return false
    const since = this.#downSince.get(hex) ?? this.#startedAt
    return this.#clock() - since > this.#opts.repairAfterMs
  }

  /** Hex keys of the connected peers. */
  #connectedKeys(): Set<string> {
    return new Set(this.#p2p.peers().map((p) => toHex(p.publicKey)))
  }

  /** Placement for a study: the nominal holders and, from this node's view, who holds it now that some may be down. */
  placement(study: StudyRecord): { order: string[]; nominal: string[]; assigned: string[]; target: number } {
    const orgs = this.#chain.orgs()
    const ids = orgs.map((o) => o.id)
    const k = this.#chain.params().replicationFactor
    const order = placementOrder(study.studyId, study.custodian, ids)
    // holdersOf's definition (the first k of the order), without hashing again.
    const nominal = order.slice(0, Math.max(1, k))
    const byId = new Map(orgs.map((o) => [o.id, o]))
    const connected = this.#connectedKeys()
    const assigned = order
      .filter((id) => {
        const o = byId.get(id)
        return o !== undefined && !this.isDown(o, connected)
      })
      .slice(0, k)
    return { order, nominal, assigned, target: Math.min(k, order.length) }
  }

  /** Whether organization `orgId` keeps a copy of the study by duty (custodian, nominal holder or replacement). */
  hasDuty(orgId: string, study: StudyRecord): boolean {
    const p = this.placement(study)
    return orgId === study.custodian || p.nominal.includes(orgId) || p.assigned.includes(orgId)
  }
}
