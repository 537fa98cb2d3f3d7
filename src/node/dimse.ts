import { lookup } from 'node:dns/promises'
import { stat } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
import type { DimseBackend, DimsePeer, DimseStoreResult, DimseStoreSession } from '../dimse/index.js'
import { STATUS } from '../dimse/index.js'
import type { StoreSession } from '../dicomweb/index.js'
import { errorMessage, type Logger } from '../util/index.js'
import { DATADIR_FILES, loadConfig, type DimsePeerConfig } from './config.js'

/** Who may associate: the configured peers, or anyone. */
interface Admission {
  readonly peers: readonly DimsePeerConfig[]
  readonly acceptUnknown: boolean
}

/** How long a host name's addresses are trusted before they are looked up again. */
const LOOKUP_TTL_MS = 60_000

/** An IP address in one form for comparison (IPv6 lower-cased). */
function normalIp(a: string): string {
  return a.toLowerCase().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1')
}

/**
 * The node side of the DIMSE listener (src/dimse): admits the associations
 * of the peers in `dimse.peers` (calling AE title and the host it comes
 * from; re-read from config.json when the file changes, so `radchain dimse
 * peer add` needs no restart), and stores each C-STORE's instance through the
 * same StoreSession as STOW-RS (the DICOMweb service's spool, index and
 * registration), committed before the C-STORE answer.
 */
export class DimseGateway implements DimseBackend {
  readonly #dataDir: string
  readonly #ingest: { openStore(client: string): StoreSession }
  readonly #log: Logger
  #admission: Admission
  #configMtime = 0
  readonly #hosts = new Map<string, { at: number; addrs: Set<string> }>()

  constructor(opts: { dataDir: string; admission: Admission }, modules: { ingest: { openStore(client: string): StoreSession }; logger: Logger }) {
    this.#dataDir = opts.dataDir
    this.#admission = opts.admission
    this.#ingest = modules.ingest
    this.#log = modules.logger
  }

  async admit(peer: DimsePeer): Promise<boolean> {
    await this.#reload()
    const a = this.#admission
    if (a.acceptUnknown) return true
    const known = a.peers.find((p) => p.aeTitle === peer.callingAe)
    if (known === undefined) return false
    return (await this.#addressesOf(known.host)).has(normalIp(peer.address))
  }

  openStore(peer: DimsePeer): DimseStoreSession {
    const session = this.#ingest.openStore(`dimse:${peer.callingAe}`)
    return {
      store: async (part10, expect): Promise<DimseStoreResult> => {
        const out = await session.store(part10, expect)
        if (!out.ok) return { status: out.reason, comment: out.message }
        // Durable (files, folders, index) before the C-STORE-RSP: a kill -9 after the answer loses nothing.
        await session.commit()
        return { status: STATUS.success, duplicate: out.duplicate }
      },
    }
  }

  /** Takes the peers from config.json again when the file changed since it was last read. */
  async #reload(): Promise<void> {
    try {
      const mtime = (await stat(join(this.#dataDir, DATADIR_FILES.config))).mtimeMs
      if (mtime === this.#configMtime) return
      const c = await loadConfig(this.#dataDir)
      this.#admission = { peers: c.dimse.peers, acceptUnknown: c.dimse.acceptUnknown }
      this.#configMtime = mtime
    } catch (err) {
      this.#log.warn('dimse: config.json could not be read again; the peers known before stay', { err: errorMessage(err) })
    }
  }

  /** The addresses of a peer's host: itself for an IP address, else its lookup (cached a minute). */
  async #addressesOf(host: string): Promise<Set<string>> {
    if (isIP(host) !== 0) return new Set([normalIp(host)])
    const now = Date.now()
    const hit = this.#hosts.get(host)
    if (hit !== undefined && now - hit.at < LOOKUP_TTL_MS) return hit.addrs
    try {
      const addrs = new Set((await lookup(host, { all: true })).map((r) => normalIp(r.address)))
      this.#hosts.set(host, { at: now, addrs })
      return addrs
    } catch (err) {
      this.#log.warn('dimse: a peer host name could not be looked up', { host, err: errorMessage(err) })
      return new Set()
    }
  }
}
