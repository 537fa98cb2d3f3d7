import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { fromHex, toHex } from '../util/index.js'
import { makeBlock, BLOCK_VERSION, ZERO_HASH, type Block } from './block.js'
import { GenesisError } from './errors.js'
import { merkleRoot } from '../crypto/index.js'
import { ORG_ID_RE, authoritySet, putOrg, type OrgRecord } from './orgs.js'
import { MAX_STUDY_CHUNKS_LIMIT, PARAM_MIN, paramsProblem, putParams, withDefaults, type ChainParams } from './params.js'
import { StateOverlay, nextStateRoot, type StateWrites } from './state.js'

/** A parsed genesis file. */
export interface Genesis {
  readonly chainId: string
  /** Chain time of block 0 (ms since the Unix epoch). */
  readonly genesisTime: number
  readonly params: ChainParams
  readonly orgs: readonly OrgRecord[]
}

const hex32 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 32 bytes of hex')
const u32 = (min: number): z.ZodNumber => z.number().int().min(min).max(0xffffffff)
const u53 = (min: number): z.ZodNumber => z.number().int().min(min).max(Number.MAX_SAFE_INTEGER)

const OrgSchema = z.strictObject({
  id: z.string().regex(ORG_ID_RE, 'organization id: lower-case letters, digits and dashes'),
  name: z.string().min(1).max(256),
  role: z.enum(['authority', 'member']).default('authority'),
  signKey: hex32,
  encKey: hex32,
  addrs: z.array(z.string().max(256)).max(16).default([]),
})

const GenesisSchema = z.strictObject({
  chainId: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/, 'chain id: letters, digits, dot, dash, underscore; up to 64'),
  genesisTime: z.iso.datetime({ offset: true }),
  params: z
    .strictObject({
      blockIntervalMs: u32(PARAM_MIN.blockIntervalMs),
      maxBlockBytes: u32(PARAM_MIN.maxBlockBytes),
      maxTxBytes: u32(PARAM_MIN.maxTxBytes),
      maxBlockTxs: u32(PARAM_MIN.maxBlockTxs),
      maxClockDriftMs: u32(PARAM_MIN.maxClockDriftMs),
      replicationFactor: u32(PARAM_MIN.replicationFactor),
      chunkSize: u32(PARAM_MIN.chunkSize),
      maxStudyBytes: u53(PARAM_MIN.maxStudyBytes),
      maxStudyChunks: z.number().int().min(PARAM_MIN.maxStudyChunks).max(MAX_STUDY_CHUNKS_LIMIT),
    })
    .partial()
    .default({}),
  orgs: z.array(OrgSchema).min(1),
})

/** The JSON form of a genesis, as written to genesis.json. */
export type GenesisJSON = z.input<typeof GenesisSchema>

/** Parses and checks a genesis document; throws GENESIS_INVALID naming the first problem. */
export function parseGenesis(json: unknown, source = 'genesis'): Genesis {
  const r = GenesisSchema.safeParse(json)
  if (!r.success) {
    const i = r.error.issues[0]
    const where = i === undefined ? '' : i.path.join('.')
    throw new GenesisError('GENESIS_INVALID', `${source}: ${where === '' ? '' : where + ': '}${i?.message ?? 'invalid'}`)
  }
  const g = r.data
  const orgs: OrgRecord[] = g.orgs.map((o) => ({ ...o, signKey: fromHex(o.signKey), encKey: fromHex(o.encKey) }))
  const ids = new Set<string>()
  const keys = new Set<string>()
  for (const o of g.orgs) {
    if (ids.has(o.id)) throw new GenesisError('GENESIS_INVALID', `${source}: organization id ${o.id} appears twice`)
    if (keys.has(o.signKey.toLowerCase())) throw new GenesisError('GENESIS_INVALID', `${source}: a signing key appears twice`)
    ids.add(o.id)
    keys.add(o.signKey.toLowerCase())
  }
  if (!orgs.some((o) => o.role === 'authority')) throw new GenesisError('GENESIS_INVALID', `${source}: at least one organization must be an authority`)
  const params: ChainParams = withDefaults(g.params)
  const problem = paramsProblem(params)
  if (problem !== undefined) throw new GenesisError('GENESIS_INVALID', `${source}: ${problem}`)
  const genesisTime = Date.parse(g.genesisTime)
  if (!(genesisTime >= 0)) throw new GenesisError('GENESIS_INVALID', `${source}: genesisTime must not be before 1970-01-01`)
  return { chainId: g.chainId, genesisTime, params, orgs }
}

/**
 * An organization's card: what a founding organization publishes for the
 * genesis (`radchain keys show --json`): id, name, role, public keys and the
 * addresses the others dial. Other fields (e.g. a peer id) are ignored.
 */
export type OrgCardJSON = z.input<typeof OrgSchema>

/** Parses and checks one organization card; throws GENESIS_INVALID naming `source` and the field. */
export function parseOrgCard(json: unknown, source: string): OrgRecord {
  const picked =
    json !== null && typeof json === 'object' && !Array.isArray(json)
      ? Object.fromEntries(Object.entries(json).filter(([k]) => ['id', 'name', 'role', 'signKey', 'encKey', 'addrs'].includes(k)))
      : json
  const r = OrgSchema.safeParse(picked)
  if (!r.success) {
    const i = r.error.issues[0]
    const where = i === undefined ? '' : i.path.join('.')
    throw new GenesisError('GENESIS_INVALID', `${source}: ${where === '' ? '' : where + ': '}${i?.message ?? 'not an organization card'}`)
  }
  return { ...r.data, signKey: fromHex(r.data.signKey), encKey: fromHex(r.data.encKey) }
}

/**
 * A genesis from the founding organizations' cards, in the order given.
 * Throws GENESIS_INVALID naming the cards' sources when two share an id, a
 * signing key or an encryption key, and whatever the genesis checks find.
 */
export function assembleGenesis(opts: {
  chainId: string
  genesisTime: number
  params?: Partial<ChainParams>
  cards: readonly { org: OrgRecord; source: string }[]
}): Genesis {
  const seen = new Map<string, string>()
  for (const { org, source } of opts.cards) {
    for (const [what, v] of [
      ['organization id', org.id],
      ['signing key', toHex(org.signKey)],
      ['encryption key', toHex(org.encKey)],
    ] as const) {
      const key = `${what}:${v}`
      const first = seen.get(key)
      if (first !== undefined)
        throw new GenesisError('GENESIS_INVALID', `${source} and ${first} have the same ${what}${what === 'organization id' ? ` (${v})` : ''}`)
      seen.set(key, source)
    }
  }
  const g: Genesis = { chainId: opts.chainId, genesisTime: opts.genesisTime, params: withDefaults(opts.params ?? {}), orgs: opts.cards.map((c) => c.org) }
  // The same checks as a genesis file gets.
  return parseGenesis(genesisToJSON(g), 'the assembled genesis')
}

/** Reads and parses a genesis file. */
export async function loadGenesis(path: string): Promise<Genesis> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new GenesisError('GENESIS_NOT_FOUND', `cannot read genesis file ${path}`, { cause: err })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new GenesisError('GENESIS_INVALID', `${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
  return parseGenesis(json, path)
}

/** JSON form of a genesis. */
export function genesisToJSON(g: Genesis): GenesisJSON {
  return {
    chainId: g.chainId,
    genesisTime: new Date(g.genesisTime).toISOString(),
    params: { ...g.params },
    orgs: g.orgs.map((o) => ({ id: o.id, name: o.name, role: o.role, signKey: toHex(o.signKey), encKey: toHex(o.encKey), addrs: [...o.addrs] })),
  }
}

/** Block 0 and the initial state it commits to. */
export interface GenesisResult {
  readonly block: Block
  readonly writes: StateWrites
}

/** Builds the genesis block and its state writes. Deterministic in the genesis document. */
export function genesisBlock(g: Genesis): GenesisResult {
  const s = new StateOverlay(new Map())
  putParams(s, g.params)
  for (const o of g.orgs) putOrg(s, o)
  const writes = s.writes()
  const block = makeBlock(
    {
      version: BLOCK_VERSION,
      chainId: g.chainId,
      height: 0,
      parentHash: ZERO_HASH,
      time: g.genesisTime,
      proposer: ZERO_HASH,
      txRoot: merkleRoot([]),
      stateRoot: nextStateRoot(ZERO_HASH, writes),
      authoritySetHash: authoritySet(s).hash,
      lastCommitHash: ZERO_HASH,
    },
    [],
  )
  return { block, writes }
}
