import { readFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { z } from 'zod'
import { RadError, LOG_LEVELS, writeFileAtomic, type LogLevel, type ErrorCodes } from '../util/index.js'
import { DEFAULT_MEMPOOL_LIMITS, ORG_ID_RE, type MempoolLimits } from '../chain/index.js'
import { API_SOCKET_FILE, API_TOKEN_FILE, DAEMON_INFO_FILE, HALTED_FILE } from '../api/index.js'
import { DEFAULT_BFT_OPTS } from '../consensus/index.js'
import { DEFAULT_SWARM_OPTS, type SwarmOpts } from './swarm-opts.js'

/** Configuration failure codes. */
export type ConfigCode = ErrorCodes<'CONFIG_NOT_FOUND' | 'CONFIG_INVALID' | 'CONFIG_EXISTS'>

/** A configuration failure. */
export class ConfigError extends RadError<ConfigCode> {
  constructor(code: ConfigCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'ConfigError'
  }
}

/** Names of the files in a data dir. */
export const DATADIR_FILES = {
  config: 'config.json',
  genesis: 'genesis.json',
  keystore: 'keystore.json',
  passphrase: 'passphrase',
  db: 'db',
  apiToken: API_TOKEN_FILE,
  apiSocket: API_SOCKET_FILE,
  halted: HALTED_FILE,
  daemon: DAEMON_INFO_FILE,
  wal: 'consensus.wal',
  chunks: 'chunks',
  /** DICOMweb clients' tokens, hashed (`radchain dicomweb token create`). */
  dicomwebTokens: 'dicomweb-tokens.json',
  /** Instances received over DICOMweb or DIMSE until their study is registered. */
  dicomwebSpool: 'dicomweb-spool',
} as const

/** Default API port. */
export const DEFAULT_API_PORT = 7460
/** Default chunk store quota: 100 GiB. */
export const DEFAULT_CHUNK_QUOTA = 100 * 1024 ** 3

/** Default DICOMweb listen address (host:port). */
export const DEFAULT_DICOMWEB_LISTEN = '127.0.0.1:7462'

/** Default DIMSE listen address (host:port; 11112 is the registered DICOM port, PS3.8 Annex G). */
export const DEFAULT_DIMSE_LISTEN = '127.0.0.1:11112'

/** Default DIMSE AE title of the node. */
export const DEFAULT_DIMSE_AE_TITLE = 'RADCHAIN'

/** An AE title (PS3.5 6.2, VR AE): 1-16 characters of the default repertoire, no backslash or control character, not blank. */
export const AE_TITLE_RE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/

/** Why `ae` is not an AE title radchain takes, or undefined when it is one. */
export function aeTitleProblem(ae: string): string | undefined {
  if (!AE_TITLE_RE.test(ae)) return 'an AE title is 1 to 16 characters, without backslash or control characters'
  if (ae.trim() !== ae) return 'an AE title has no leading or trailing spaces (they are not significant on the wire)'
  return undefined
}

const aeTitle = z.string().superRefine((s, ctx) => {
  const p = aeTitleProblem(s)
  if (p !== undefined) ctx.addIssue({ code: 'custom', message: p })
})

/** A host name or an IP address (IPv6 without brackets). */
const hostText = z
  .string()
  .min(1)
  .max(253)
  .regex(/^([A-Za-z0-9.-]+|[0-9A-Fa-f:.]+)$/, 'a host name or an IP address')

/** Default peer-to-peer listen address. */
export const DEFAULT_P2P_LISTEN = '/ip4/127.0.0.1/tcp/7461'

/** A multiaddr as text: /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>, as radchain nodes listen and dial. */
const multiaddrText = z
  .string()
  .max(256)
  .regex(/^\/(ip4|ip6|dns|dns4|dns6)\/[^/]+\/tcp\/\d{1,5}(\/p2p\/[1-9A-HJ-NP-Za-km-z]+)?$/, 'a multiaddr /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>')

const ConfigSchema = z.strictObject({
  api: z
    .strictObject({
      host: z.enum(['127.0.0.1', '::1', 'localhost']).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(DEFAULT_API_PORT),
      maxBodyBytes: z
        .number()
        .int()
        .min(1024)
        .max(256 * 1024 * 1024)
        .default(8 * 1024 * 1024),
    })
    .prefault({}),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  genesis: z.string().min(1).default(DATADIR_FILES.genesis),
  keystore: z.string().min(1).default(DATADIR_FILES.keystore),
  passphraseFile: z.string().min(1).default(DATADIR_FILES.passphrase),
  chunks: z
    .strictObject({
      /** Folder of the chunk store, relative to the data dir unless absolute. */
      dir: z.string().min(1).default(DATADIR_FILES.chunks),
      /** Largest total size of stored chunks and envelopes (bytes). */
      quotaBytes: z.number().int().min(0).default(DEFAULT_CHUNK_QUOTA),
    })
    .prefault({}),
  mempool: z
    .strictObject({
      maxTxs: z.number().int().min(1).default(DEFAULT_MEMPOOL_LIMITS.maxTxs),
      maxBytes: z.number().int().min(1024).default(DEFAULT_MEMPOOL_LIMITS.maxBytes),
      maxPerSender: z.number().int().min(1).default(DEFAULT_MEMPOOL_LIMITS.maxPerSender),
      maxPerPeer: z.number().int().min(1).default(DEFAULT_MEMPOOL_LIMITS.maxPerPeer),
      maxBytesPerPeer: z.number().int().min(1024).default(DEFAULT_MEMPOOL_LIMITS.maxBytesPerPeer),
    })
    .prefault({}),
  /** Heartbeat override in ms (the genesis blockIntervalMs otherwise). */
  heartbeatMs: z.number().int().min(10).optional(),
  p2p: z
    .strictObject({
      listen: z.array(multiaddrText).min(1).default([DEFAULT_P2P_LISTEN]),
      /**
       * The addresses other organizations dial, published in this organization's
       * card for the genesis (e.g. /dns4/radchain.hospital.example/tcp/7461):
       * the listen addresses when empty.
       */
      announce: z.array(multiaddrText).max(16).default([]),
      dialIntervalMs: z.number().int().min(50).max(60_000).default(1000),
    })
    .prefault({}),
  /** The DICOMweb listener for PACS and viewers (PS3.18; README "Connecting a PACS and a viewer"). */
  dicomweb: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** host:port ([v6]:port for IPv6); anything but loopback needs tls, or insecureHttp. */
      listen: z
        .string()
        .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'host:port, e.g. 127.0.0.1:7462 or [::1]:7462')
        .default(DEFAULT_DICOMWEB_LISTEN),
      /** A study received over STOW-RS is registered once no instance of it arrived for this long. */
      stableSeconds: z.number().int().min(1).max(86_400).default(30),
      /** Studies leased to this organization are fetched when granted and shown (a node that never uses DICOMweb for them saves the fetch and a decryption). */
      showLeased: z.boolean().default(true),
      maxBodyBytes: z
        .number()
        .int()
        .min(1024 * 1024)
        .default(8 * 1024 ** 3),
      maxPartBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .max(2 * 1024 ** 3)
        .default(1024 ** 3),
      /** PEM files (paths relative to the data dir unless absolute): HTTPS. */
      tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
      /** Plain HTTP on a non-loopback address: only when this is set, and the daemon warns. */
      insecureHttp: z.boolean().default(false),
      /** Browser origins allowed to call (CORS), e.g. a viewer's; `*` for any. */
      corsOrigins: z.array(z.string().min(1).max(256)).max(64).default([]),
    })
    .prefault({}),
  /** The DICOM networking (DIMSE) listener for PACS and modalities (PS3.7, PS3.8; README "DICOM networking (DIMSE)"). */
  dimse: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** host:port ([v6]:port for IPv6); anything but loopback needs tls, or insecure. */
      listen: z
        .string()
        .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'host:port, e.g. 127.0.0.1:11112 or [::1]:11112')
        .default(DEFAULT_DIMSE_LISTEN),
      aeTitle: aeTitle.default(DEFAULT_DIMSE_AE_TITLE),
      /** The DICOM nodes allowed to associate (`radchain dimse peer add`): calling AE title and the host it comes from. */
      peers: z
        .array(z.strictObject({ aeTitle, host: hostText, port: z.number().int().min(1).max(65535) }))
        .max(1024)
        .default([])
        .superRefine((peers, ctx) => {
          const seen = new Set<string>()
          for (const [i, p] of peers.entries()) {
            if (seen.has(p.aeTitle)) ctx.addIssue({ code: 'custom', path: [i, 'aeTitle'], message: `AE title ${p.aeTitle} listed twice` })
            seen.add(p.aeTitle)
          }
        }),
      /** Associations from any calling AE title and address (not only dimse.peers). */
      acceptUnknown: z.boolean().default(false),
      /** Largest dataset of one C-STORE. */
      maxInstanceBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .max(2 * 1024 ** 3)
        .default(1024 ** 3),
      /** An association that sends nothing for this long is aborted. */
      idleSeconds: z.number().int().min(1).max(86_400).default(120),
      /** How long a peer this node sends to (C-MOVE destination, `study send`, `--deliver-to`) may take to answer. */
      timeoutSeconds: z.number().int().min(1).max(3600).default(30),
      /** PEM files (paths relative to the data dir unless absolute): DICOM TLS (PS3.15 B.1). */
      tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
      /** Plain DIMSE on a non-loopback address: only when this is set, and the daemon warns. */
      insecure: z.boolean().default(false),
    })
    .prefault({}),
  /** This organization's id and name, as its card proposes them for a genesis (`radchain keys show --json`). */
  org: z
    .strictObject({
      id: z.string().regex(ORG_ID_RE, 'organization id: lower-case letters, digits and dashes').optional(),
      name: z.string().min(1).max(256).optional(),
    })
    .prefault({}),
  consensus: z
    .strictObject({
      timeoutProposeMs: z.number().int().min(10).max(600_000).default(DEFAULT_BFT_OPTS.timeoutProposeMs),
      timeoutVoteMs: z.number().int().min(10).max(600_000).default(DEFAULT_BFT_OPTS.timeoutVoteMs),
      timeoutDeltaMs: z.number().int().min(0).max(600_000).default(DEFAULT_BFT_OPTS.timeoutDeltaMs),
      timeoutCapMs: z.number().int().min(10).max(3_600_000).default(DEFAULT_BFT_OPTS.timeoutCapMs),
      gossipMs: z.number().int().min(10).max(600_000).default(DEFAULT_BFT_OPTS.gossipMs),
    })
    .prefault({}),
  swarm: z
    .strictObject({
      /** A holder unreachable this long is replaced by the next organization in placement order. */
      repairAfterMs: z
        .number()
        .int()
        .min(100)
        .max(30 * 24 * 3600_000)
        .default(DEFAULT_SWARM_OPTS.repairAfterMs),
      reconcileMs: z.number().int().min(50).max(3_600_000).default(DEFAULT_SWARM_OPTS.reconcileMs),
      /** How often a slice of the stored chunks is read back and verified; 0 turns it off. */
      scrubIntervalMs: z
        .number()
        .int()
        .min(0)
        .max(30 * 24 * 3600_000)
        .default(DEFAULT_SWARM_OPTS.scrubIntervalMs),
      scrubBytes: z
        .number()
        .int()
        .min(1024 * 1024)
        .default(DEFAULT_SWARM_OPTS.scrubBytes),
      /** Bytes in flight of one fetch (memory per transfer); replication and repair use a quarter. */
      maxInFlightBytes: z
        .number()
        .int()
        .min(1024 * 1024)
        .max(1024 * 1024 * 1024)
        .default(DEFAULT_SWARM_OPTS.maxInFlightBytes),
      /** How long `study add` waits for the replicas before reporting the study durable or not. */
      durableTimeoutMs: z.number().int().min(0).max(3_600_000).default(60_000),
    })
    .prefault({}),
})

/** A node's configuration (config.json in the data dir), with defaults filled in. */
export interface NodeConfig {
  readonly api: { readonly host: string; readonly port: number; readonly maxBodyBytes: number }
  readonly logLevel: LogLevel
  /** Paths relative to the data dir unless absolute. */
  readonly genesis: string
  readonly keystore: string
  readonly passphraseFile: string
  readonly mempool: MempoolLimits
  readonly chunks: { readonly dir: string; readonly quotaBytes: number }
  readonly heartbeatMs?: number
  readonly p2p: { readonly listen: readonly string[]; readonly announce: readonly string[]; readonly dialIntervalMs: number }
  readonly org: { readonly id?: string; readonly name?: string }
  readonly dicomweb: {
    readonly enabled: boolean
    readonly listen: string
    readonly stableSeconds: number
    readonly showLeased: boolean
    readonly maxBodyBytes: number
    readonly maxPartBytes: number
    readonly tls?: { readonly cert: string; readonly key: string }
    readonly insecureHttp: boolean
    readonly corsOrigins: readonly string[]
  }
  readonly dimse: {
    readonly enabled: boolean
    readonly listen: string
    readonly aeTitle: string
    readonly peers: readonly DimsePeerConfig[]
    readonly acceptUnknown: boolean
    readonly maxInstanceBytes: number
    readonly idleSeconds: number
    readonly timeoutSeconds: number
    readonly tls?: { readonly cert: string; readonly key: string }
    readonly insecure: boolean
  }
  readonly consensus: {
    readonly timeoutProposeMs: number
    readonly timeoutVoteMs: number
    readonly timeoutDeltaMs: number
    readonly timeoutCapMs: number
    readonly gossipMs: number
  }
  readonly swarm: SwarmOpts & { readonly durableTimeoutMs: number }
}

/** A DICOM node allowed to associate with this one (`dimse.peers`). */
export interface DimsePeerConfig {
  readonly aeTitle: string
  readonly host: string
  readonly port: number
}

/** The JSON a user may write (every field optional). */
export type NodeConfigJSON = z.input<typeof ConfigSchema>

/** Checks config JSON; CONFIG_INVALID names the first bad field. */
export function parseConfig(json: unknown, source = 'config'): NodeConfig {
  if (typeof json === 'object' && json !== null && 'testing' in json) {
    // Fault injection lives outside the product: only a devnet daemon reads it, from faults.json.
    throw new ConfigError(
      'CONFIG_INVALID',
      `${source}: testing: fault injection is for devnet daemons only and a production daemon refuses it; remove the testing section`,
    )
  }
  return checkJson(ConfigSchema, json, source)
}

/** `json` checked against `schema`, defaults filled in; CONFIG_INVALID names the first bad field of `source`. */
export function checkJson<S extends z.ZodType>(schema: S, json: unknown, source: string): z.output<S> {
  const r = schema.safeParse(json)
  if (!r.success) {
    const i = r.error.issues[0]
    const where = i === undefined ? '' : i.path.join('.')
    throw new ConfigError('CONFIG_INVALID', `${source}: ${where === '' ? '' : where + ': '}${i?.message ?? 'invalid'}`)
  }
  return r.data
}

/**
 * The JSON in the file at `path`. A file that cannot be read throws the read
 * error as it is (the caller says what a missing file means); a file that is
 * not JSON is CONFIG_INVALID.
 */
export async function readJsonFile(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8')
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ConfigError('CONFIG_INVALID', `${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
}

/** Reads `<dataDir>/config.json`. */
export async function loadConfig(dataDir: string): Promise<NodeConfig> {
  const path = join(dataDir, DATADIR_FILES.config)
  let json: unknown
  try {
    json = await readJsonFile(path)
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError('CONFIG_NOT_FOUND', `no radchain node in ${dataDir} (missing ${DATADIR_FILES.config}; run \`radchain init\`)`, { cause: err })
  }
  return parseConfig(json, path)
}

/** Writes a config file atomically. */
export async function saveConfig(dataDir: string, json: NodeConfigJSON): Promise<void> {
  // Written with every default filled in, so operators see what they can change.
  const full = parseConfig(json)
  await writeFileAtomic(join(dataDir, DATADIR_FILES.config), JSON.stringify(full, null, 2) + '\n', 0o644)
}

/** A config path resolved against the data dir. */
export function resolveIn(dataDir: string, p: string): string {
  return isAbsolute(p) ? p : join(dataDir, p)
}

/** The host part of a multiaddr (/ip4|ip6|dns|dns4|dns6/<host>/...), lower-cased; undefined for another form. */
function addrHost(addr: string): string | undefined {
  return /^\/(?:ip4|ip6|dns|dns4|dns6)\/([^/]+)\//.exec(addr)?.[1]?.toLowerCase()
}

/** The host and port of a `host:port` listen address ([v6]:port for IPv6, brackets dropped). */
export function splitHostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':')
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1')
  return { host, port: Number(listen.slice(i + 1)) }
}

/** Whether a multiaddr is a loopback address: reachable from this machine only, to dial or to listen on. */
export function isLoopbackAddr(addr: string): boolean {
  const host = addrHost(addr)
  return host !== undefined && (host.startsWith('127.') || host === '::1' || host === 'localhost')
}

/** Whether a multiaddr names this machine only (loopback, or the unspecified address): no other host can dial it. */
export function isLocalOnlyAddr(addr: string): boolean {
  const host = addrHost(addr)
  return host !== undefined && (isLoopbackAddr(addr) || host === '0.0.0.0' || host === '::')
}
