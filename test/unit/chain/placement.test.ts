import t from 'tap'
import { holdersOf, placementOrder } from '../../../src/chain/index.js'
import { fromHex } from '../../../src/util/index.js'

const ORGS = ['org1', 'org2', 'org3', 'org4']
const sid = (i: number): Uint8Array => {
  const b = new Uint8Array(16)
  new DataView(b.buffer).setUint32(12, i)
  return b
}

t.test('placement is pinned: the same order on every node, every version', async (t) => {
  // Pinned (cross-checked with Python's hashlib): changing the hash, its tag or its input order changes where every study lives.
  t.same(placementOrder(fromHex('00112233445566778899aabbccddeeff'), 'org1', ORGS), ['org1', 'org3', 'org2', 'org4'])
  t.same(placementOrder(fromHex('ffeeddccbbaa99887766554433221100'), 'org3', ORGS), ['org3', 'org4', 'org2', 'org1'])
  t.same(placementOrder(sid(1), 'org2', [...ORGS].reverse()), placementOrder(sid(1), 'org2', ORGS), 'the registry order does not matter')
})

t.test('the custodian comes first, then every other organization once', async (t) => {
  const wrong: string[] = []
  for (let i = 0; i < 200; i++) {
    const c = ORGS[i % 4] as string
    const order = placementOrder(sid(i), c, ORGS)
    if (order[0] !== c || [...order].sort().join() !== [...ORGS].sort().join()) wrong.push(`study ${i}, custodian ${c}: ${order.join(',')}`)
  }
  t.same(wrong, [], 'for 200 studies: the custodian first, then each other organization once')
  t.same(holdersOf(sid(1), 'org1', ['org1'], 3), ['org1'], 'fewer holders when fewer organizations')
  t.same(placementOrder(sid(1), 'gone', ORGS).length, 4, 'a custodian no longer admitted holds nothing')
  t.notOk(placementOrder(sid(1), 'gone', ORGS).includes('gone'))
})

t.test('load spreads evenly and an admission moves only what it must', async (t) => {
  const n = 4000
  const count = new Map<string, number>()
  const five = [...ORGS, 'org5']
  let moved = 0
  const wrong: string[] = []
  for (let i = 0; i < n; i++) {
    const before = holdersOf(sid(i), 'org1', ORGS, 3)
    const after = holdersOf(sid(i), 'org1', five, 3)
    for (const o of after.slice(1)) count.set(o, (count.get(o) ?? 0) + 1)
    const lost = before.filter((o) => !after.includes(o))
    if (lost.length > 0) {
      moved++
      if (lost.length !== 1 || !after.includes('org5')) wrong.push(`study ${i}: ${before.join(',')} -> ${after.join(',')}`)
    }
  }
  t.same(wrong, [], `whatever changed, org5 took the place of exactly one holder (${n} studies)`)
  // Two of four non-custodians per study: each should get about half of the studies.
  for (const o of ['org2', 'org3', 'org4', 'org5']) {
    const share = (count.get(o) ?? 0) / n
    t.ok(share > 0.45 && share < 0.55, `${o} holds ${(share * 100).toFixed(1)} % of studies (expected 50 %)`)
  }
  const share = moved / n
  t.ok(share > 0.45 && share < 0.55, `${(share * 100).toFixed(1)} % of studies moved (expected 50 %: org5 enters the top two of four)`)
})
