// Shared builders for the chain and storage unit tests (not a test file itself).
import { Ed25519Signer, sha256 } from '../../../src/crypto/index.js'
import { toHex, utf8 } from '../../../src/util/index.js'
import {
  applyWrites, buildBlock, genesisBlock, getNonce, parseGenesis, signTx,
  type Block, type BuildResult, type ChainParams, type Genesis, type OrgAction, type OrgRole, type Parent, type StateWrites, type Tx,
} from '../../../src/chain/index.js'

/** Chain id of every test chain. */
export const CHAIN_ID = 'radchain-test'

/** Small limits, so the limit paths are cheap to reach (the genesis schema's minimums). */
export const SMALL_PARAMS: Partial<ChainParams> = { maxBlockBytes: 64 * 1024, maxTxBytes: 8 * 1024, maxBlockTxs: 8, blockIntervalMs: 100 }

/** Deterministic signer: seed = sha256(label), so failures reproduce. */
export function testSigner(label: string): Ed25519Signer {
  return new Ed25519Signer(sha256(utf8(`signer/${label}`)))
}

/** An organization of a test chain with its signing key. */
export interface TestOrg {
  readonly id: string
  readonly role: OrgRole
  readonly signer: Ed25519Signer
  readonly encKey: Uint8Array
}

/** A test organization with deterministic keys. */
export function testOrg(id: string, role: OrgRole): TestOrg {
  return { id, role, signer: testSigner(id), encKey: sha256(utf8(`enc/${id}`)) }
}

/** A chain at genesis: its state map (mutable, updated by `commit`) and head. */
export interface TestChain {
  readonly genesis: Genesis
  readonly orgs: readonly TestOrg[]
  readonly authorities: readonly TestOrg[]
  readonly state: Map<string, Uint8Array>
  head: Parent
}

/** Genesis JSON of `orgs`. */
export function genesisJSON(orgs: readonly TestOrg[], params: Partial<ChainParams> = SMALL_PARAMS): unknown {
  return {
    chainId: CHAIN_ID,
    genesisTime: '2024-01-01T00:00:00.000Z',
    params,
    orgs: orgs.map((o) => ({ id: o.id, name: `Org ${o.id}`, role: o.role, signKey: toHex(o.signer.publicKey), encKey: toHex(o.encKey), addrs: [] })),
  }
}

/** A fresh chain with `authorities` authorities (auth-0, ...) and `members` members (member-0, ...). */
export function makeChain(opts: { authorities: number; members?: number; params?: Partial<ChainParams> }): TestChain {
  const orgs: TestOrg[] = []
  for (let i = 0; i < opts.authorities; i++) orgs.push(testOrg(`auth-${i}`, 'authority'))
  for (let i = 0; i < (opts.members ?? 0); i++) orgs.push(testOrg(`member-${i}`, 'member'))
  const genesis = parseGenesis(genesisJSON(orgs, opts.params ?? SMALL_PARAMS))
  const g = genesisBlock(genesis)
  const state = new Map<string, Uint8Array>()
  applyWrites(state, g.writes)
  return { genesis, orgs, authorities: orgs.filter((o) => o.role === 'authority'), state, head: { header: g.block.header, hash: g.block.hash } }
}

/** Makes `block` (with its `writes`) the new head of `chain`. */
export function commit(chain: TestChain, block: Block, writes: StateWrites): void {
  applyWrites(chain.state, writes)
  chain.head = { header: block.header, hash: block.hash }
}

/** Builds the next block of `chain` from `txs` (1 s after the head, proposed by the first authority) and commits it. */
export function advance(chain: TestChain, txs: readonly Tx[], opts: { proposer?: Uint8Array } = {}): BuildResult {
  const proposer = opts.proposer ?? (chain.authorities[0] as TestOrg).signer.publicKey
  const r = buildBlock(chain.state, chain.head, txs, { time: chain.head.header.time + 1000, proposer })
  commit(chain, r.block, r.writes)
  return r
}

/** A signed note. */
export function note(signer: Ed25519Signer, nonce: number, text = 'hello', chainId = CHAIN_ID): Tx {
  return signTx(signer, { chainId, type: 'note', nonce, payload: { text } })
}

/** A signed org vote from `signer` at its next nonce on `chain`. */
export function vote(chain: TestChain, signer: Ed25519Signer, action: OrgAction, nonceOffset = 0): Tx {
  return signTx(signer, { chainId: CHAIN_ID, type: 'org', nonce: getNonce(chain.state, signer.publicKey) + nonceOffset, payload: action })
}

/** The error code `fn` throws, or undefined when it returns. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : `non-coded ${String(err)}`
  }
}

/** Sorted hex dump of a state map, for comparing two states. */
export function dumpState(s: ReadonlyMap<string, Uint8Array>): [string, string][] {
  return [...s.entries()].map(([k, v]): [string, string] => [k, toHex(v)]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}
