import t, { type Test } from 'tap'
import { toHex } from '../../../src/util/index.js'
import type { Ed25519Signer } from '../../../src/crypto/index.js'
import { applyBlock, applyWrites, decodeBlock, getParams, isJailed, makeBlock, proposerFor, proposerOrder, type Block } from '../../../src/chain/index.js'
import { CHAIN_ID, advance, dumpState, makeChain, type NextOpts, type TestChain, type TestOrg } from './fixtures.js'

const order = (c: TestChain): string[] => proposerOrder(c.state).map((o) => o.id)
const jailed = (c: TestChain): string[] => c.authorities.filter((o) => isJailed(c.state, o.id)).map((o) => o.id)
const orgOf = (c: TestChain, id: string): TestOrg => {
  const o = c.authorities.find((x) => x.id === id)
  if (o === undefined) throw new Error(`no authority ${id}`)
  return o
}
const signers = (c: TestChain, ids: readonly string[]): Ed25519Signer[] => ids.map((id) => orgOf(c, id).signer)
const proposerId = (c: TestChain, b: Block): string => {
  const o = c.authorities.find((x) => toHex(x.signer.publicKey) === toHex(b.header.proposer))
  if (o === undefined) throw new Error('proposer is not an authority')
  return o.id
}

/** Replays `blocks` through decodeBlock and applyBlock on a fresh copy of the chain; returns that copy. */
function replay(t: Test, blocks: readonly Block[]): TestChain {
  const d = makeChain({ authorities: 4 })
  const p = getParams(d.state)
  for (const b of blocks) {
    const received = decodeBlock(b.bytes, { chainId: CHAIN_ID, maxBlockBytes: p.maxBlockBytes, maxBlockTxs: p.maxBlockTxs, maxTxBytes: p.maxTxBytes })
    const r = applyBlock(d.state, d.head, received)
    t.equal(toHex(r.stateRoot), toHex(b.header.stateRoot), `replay of block ${b.header.height}: same state root`)
    applyWrites(d.state, r.writes)
    d.head = { header: received.header, hash: received.hash }
  }
  return d
}

/**
 * The scenario of the rotation doc comment, on a chain of four authorities:
 * four blocks with no misses; a block decided at round 1 (order[0] missed its
 * turn); four blocks certified without the missing authority; one block whose
 * certificate it signs; the next block, carrying that certificate.
 */
function scenario(t: Test | null): { c: TestChain; blocks: Block[]; missed: string } {
  const c = makeChain({ authorities: 4 })
  const all = c.authorities.map((o) => o.id)
  const blocks: Block[] = []
  const step = (opts: NextOpts, check?: (b: Block, before: string[]) => void): void => {
    const before = order(c)
    const b = advance(c, [], opts).block
    blocks.push(b)
    check?.(b, before)
  }
  // 1. No misses, everyone signs.
  const rotated: string[] = []
  for (let i = 0; i < 4; i++) {
    step({ signers: signers(c, all) }, (b, before) => {
      rotated.push(proposerId(c, b))
      t?.equal(proposerId(c, b), before[0], `block ${b.header.height}: proposed by order[0]`)
      t?.equal(order(c)[3], before[0], `block ${b.header.height}: its proposer moves to the back`)
      t?.same(jailed(c), [], `block ${b.header.height}: nobody jailed`)
    })
  }
  t?.same(rotated, ['auth-0', 'auth-1', 'auth-2', 'auth-3'], 'round-0 proposers rotate through all four over four blocks')
  t?.equal(new Set(rotated).size, 4)
  t?.same(order(c), ['auth-0', 'auth-1', 'auth-2', 'auth-3'], 'and the order comes back to the start')

  // 2. order[0] is down: round 0 times out, order[1] proposes at round 1.
  const missed = order(c)[0] as string
  const live = all.filter((id) => id !== missed)
  step({ round: 1, signers: signers(c, live) }, (b, before) => {
    t?.equal(proposerId(c, b), before[1], 'the round-1 block is proposed by order[1]')
    t?.same(jailed(c), [missed], 'order[0] is jailed for the missed turn')
    t?.equal(order(c)[3], missed, 'and moves to the back of the order')
  })

  // 3. It stays at the back while it does not sign (more blocks than authorities).
  const liveProposers: string[] = []
  for (let i = 0; i < 4; i++) {
    step({ signers: signers(c, live) }, (b) => {
      liveProposers.push(proposerId(c, b))
      t?.same(jailed(c), [missed], `block ${b.header.height}: still jailed`)
      t?.equal(order(c)[3], missed, `block ${b.header.height}: still at the back`)
      t?.not(proposerFor(c.state, 0).id, missed, `block ${b.header.height}: not the next round-0 proposer`)
    })
  }
  t?.notOk(liveProposers.includes(missed), 'it proposed none of them')
  t?.same(new Set(liveProposers.slice(0, 3)), new Set(live), 'the three others rotate among themselves')

  // 4. It signs block h; block h + 1 carries its precommit in lastCommit and releases it.
  step({ signers: signers(c, [missed, ...live.slice(0, 2)]) }, (b) => {
    t?.same(jailed(c), [missed], `block ${b.header.height} (whose own certificate it signs): still jailed, its parent's certificate lacks it`)
  })
  step({}, (b) => {
    t?.ok(b.lastCommit.length > 0 && c.lastCommit !== null, 'the block carries a certificate')
    t?.same(jailed(c), [], `block ${b.header.height}: released by its precommit in lastCommit`)
    t?.equal(order(c)[0], missed, 'and, its last turn being the oldest, it leads the order again')
    t?.equal(proposerFor(c.state, 0).id, missed, 'so it proposes the next round 0')
  })
  return { c, blocks, missed }
}

t.test('proposerFor(state, r) is order[r mod n]', async (t) => {
  const c = makeChain({ authorities: 4 })
  for (let k = 0; k < 3; k++) {
    const o = order(c)
    for (let r = 0; r < 9; r++) t.equal(proposerFor(c.state, r).id, o[r % 4], `after ${k} blocks, round ${r}`)
    advance(c, [])
  }
})

t.test('rotation with the missed-turn rule: rotate, jail at round 1, stay at the back, release by a precommit in lastCommit', async (t) => {
  const { c, blocks } = scenario(t)
  // Deterministic: a second run of the same scenario and a replay of its
  // blocks through decodeBlock/applyBlock reach the same state.
  const again = scenario(null)
  t.equal(toHex(again.c.head.hash), toHex(c.head.hash), 'a second copy reaches the same head')
  t.same(dumpState(again.c.state), dumpState(c.state), 'and the same state')
  const d = replay(t, blocks)
  t.equal(toHex(d.head.hash), toHex(c.head.hash), 'the replay reaches the same head')
  t.same(dumpState(d.state), dumpState(c.state), 'and the same state, rotation records included')
  t.same(
    proposerOrder(d.state).map((o) => o.id),
    order(c),
    'and the same proposer order',
  )
})

t.test('a block decided at round 2 jails the two authorities before its proposer', async (t) => {
  const c = makeChain({ authorities: 4 })
  const before = order(c)
  const b = advance(c, [], { round: 2 }).block
  t.equal(proposerId(c, b), before[2])
  t.same(jailed(c).sort(), [before[0], before[1]].sort())
  t.same(order(c).slice(2).sort(), [before[0], before[1]].sort(), 'both at the back')
  t.notOk(isJailed(c.state, before[2] as string))
  t.notOk(isJailed(c.state, before[3] as string))
})

t.test('jailing is part of the state root: a round-1 block cannot claim the state of a round-0 one', async (t) => {
  const fresh = makeChain({ authorities: 4 })
  const round1 = advance(makeChain({ authorities: 4 }), [], { round: 1 }).block
  const round0 = advance(makeChain({ authorities: 4 }), []).block
  t.not(toHex(round1.header.stateRoot), toHex(round0.header.stateRoot), 'the jail record changes the state root')
  t.doesNotThrow(() => applyBlock(fresh.state, fresh.head, round1), 'the round-1 block applies on its parent')
  const claim = makeBlock({ ...round1.header, stateRoot: round0.header.stateRoot }, [], round1.lastCommit)
  t.throws(
    () => applyBlock(fresh.state, fresh.head, claim),
    { name: 'BlockError', code: 'BLOCK_BAD_STATE_ROOT' },
    'the same block claiming no jailing is refused',
  )
})
