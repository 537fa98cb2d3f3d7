// Shared builders for the chain and storage unit tests (not a test file itself).
import { randomBytes } from 'node:crypto'
import { Ed25519Signer, sha256 } from '../../../src/crypto/index.js'
import { toHex, utf8 } from '../../../src/util/index.js'
import {
  applyWrites,
  authoritySet,
  buildBlock,
  encodeCertificate,
  genesisBlock,
  getNonce,
  lastCommitHashOf,
  parseGenesis,
  proposerFor,
  signPrecommit,
  signTx,
  type Block,
  type BuildResult,
  type ChainParams,
  type CommitCertificate,
  type Genesis,
  type OrgAction,
  type OrgRole,
  type Parent,
  type RegisterStudyPayload,
  type StateWrites,
  type Tx,
} from '../../../src/chain/index.js'

/** Chain id of every test chain. */
export const CHAIN_ID = 'radchain-test'

/** Small limits, so the limit paths are cheap to reach (the genesis schema's minimums). */
export const SMALL_PARAMS: Partial<ChainParams> = { maxBlockBytes: 64 * 1024, maxTxBytes: 8 * 1024, maxBlockTxs: 8, blockIntervalMs: 100 }

// Every signer made by testSigner, by public key, so a test chain can sign
// precommits for authorities admitted or re-keyed along the way.
const KNOWN_SIGNERS = new Map<string, Ed25519Signer>()

/** Deterministic signer: seed = sha256(label), so failures reproduce. */
export function testSigner(label: string): Ed25519Signer {
  const s = new Ed25519Signer(sha256(utf8(`signer/${label}`)))
  KNOWN_SIGNERS.set(toHex(s.publicKey), s)
  return s
}

/** The test signer holding public key `key` (made by testSigner); throws for unknown keys. */
export function signerOf(key: Uint8Array): Ed25519Signer {
  const s = KNOWN_SIGNERS.get(toHex(key))
  if (s === undefined) throw new Error(`no test signer for key ${toHex(key)}`)
  return s
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

/**
 * A chain: its state map (mutable, updated by `commit`), head, and the
 * commit certificate of the head (null at genesis), which the next block
 * carries as its lastCommit.
 */
export interface TestChain {
  readonly genesis: Genesis
  readonly orgs: readonly TestOrg[]
  readonly authorities: readonly TestOrg[]
  readonly state: Map<string, Uint8Array>
  head: Parent
  lastCommit: CommitCertificate | null
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
  return {
    genesis,
    orgs,
    authorities: orgs.filter((o) => o.role === 'authority'),
    state,
    head: { header: g.block.header, hash: g.block.hash },
    lastCommit: null,
  }
}

/** Who signs a certificate and at which round. */
export interface CertOpts {
  /** Decision round (default 0). */
  readonly round?: number
  /** The signers (default: the first quorum of the set in force, by id). */
  readonly signers?: readonly Ed25519Signer[]
}

/**
 * A commit certificate for `block`, signed at `round` by `signers` or by the
 * first quorum (by id) of the authority set in force for it. `state` is the
 * state the block was applied on, whose authority set finalizes it.
 */
export function certify(state: ReadonlyMap<string, Uint8Array>, block: Block, opts: CertOpts = {}): CommitCertificate {
  const round = opts.round ?? 0
  const set = authoritySet(state)
  const signers = opts.signers ?? set.members.slice(0, set.quorum).map((m) => signerOf(m.signKey))
  return {
    height: block.header.height,
    round,
    blockHash: block.hash,
    sigs: signers.map((s) => signPrecommit(s, block.header.chainId, block.header.height, round, block.hash)),
  }
}

/** Encoded `c`, or no bytes for null: what a block's lastCommit holds. */
export function certBytes(c: CommitCertificate | null): Uint8Array {
  return c === null ? new Uint8Array(0) : encodeCertificate(c)
}

/** The lastCommitHash a block on `chain`'s head names. */
export function lastCommitHashFor(chain: TestChain): Uint8Array {
  return lastCommitHashOf(certBytes(chain.lastCommit))
}

/**
 * Makes `block` (with its `writes`) the new head of `chain`, with a
 * certificate (see certify) as the head's lastCommit for the next block.
 */
export function commit(chain: TestChain, block: Block, writes: StateWrites, opts: CertOpts = {}): CommitCertificate {
  const cert = certify(chain.state, block, opts)
  applyWrites(chain.state, writes)
  chain.head = { header: block.header, hash: block.hash }
  chain.lastCommit = cert
  return cert
}

/** Options of the next block. */
export interface NextOpts extends CertOpts {
  /** Proposer key (default: the rotation's proposer for `round`). */
  readonly proposer?: Uint8Array
  /** Milliseconds after the head (default 1000). */
  readonly dt?: number
  /** Parent certificate to carry (default: the chain's lastCommit). */
  readonly lastCommit?: CommitCertificate | null
}

/** Builds (without committing) the next block of `chain` from `txs`, by default as production would at `round`. */
export function build(chain: TestChain, txs: readonly Tx[], opts: NextOpts = {}): BuildResult {
  const proposer = opts.proposer ?? proposerFor(chain.state, opts.round ?? 0).signKey
  const lastCommit = opts.lastCommit === undefined ? chain.lastCommit : opts.lastCommit
  return buildBlock(chain.state, chain.head, txs, { time: chain.head.header.time + (opts.dt ?? 1000), proposer, lastCommit })
}

/**
 * Builds the next block of `chain` from `txs` (1 s after the head, proposed
 * by the rotation's proposer for the round, carrying the head's certificate)
 * and commits it with a certificate of its own.
 */
export function advance(chain: TestChain, txs: readonly Tx[], opts: NextOpts = {}): BuildResult {
  const r = build(chain, txs, opts)
  commit(chain, r.block, r.writes, opts)
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

/**
 * A study.register payload without an owner: `chunkCount` chunks of
 * `chunkSize`, size `chunkCount * (chunkSize + 16) - 100` unless given, a
 * random study id and fixed placeholder hashes (1 content root, 2 digest,
 * 3 custodian envelope, 5 demographics).
 */
export function studyPayload(custodian: string, chunkCount: number, chunkSize: number, size = chunkCount * (chunkSize + 16) - 100): RegisterStudyPayload {
  const z = (n: number): Uint8Array => new Uint8Array(32).fill(n)
  return {
    studyId: new Uint8Array(randomBytes(16)),
    custodian,
    owner: null,
    ownerEphemeral: null,
    contentRoot: z(1),
    size,
    chunkCount,
    chunkSize,
    studyDigest: z(2),
    custodianEnvelope: z(3),
    ownerEnvelope: null,
    demographics: z(5),
  }
}
