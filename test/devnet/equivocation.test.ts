// One faulty authority out of four (org4 signs a second, conflicting prevote
// beside each of its prevotes) on a real devnet: the others record evidence
// against it on the ledger, and the chain stays safe and live.
// Needs `npx tsc -p .` first (daemons run from dist/).
import './helpers.js'
import t from 'tap'
import { clientOf, type DevnetOrg } from '../../src/devnet/index.js'
import { sleep } from '../../src/util/index.js'
import { allAtLeast, assertSameChain, badLogLines, maxHeight, newDevnet, org, sameHead, waitFor } from './helpers.js'

const BASE_PORT = 8400

const { m } = await newDevnet(t, 'equivocation', { orgs: 4, basePort: BASE_PORT, orgFaults: { org4: { equivocate: true } } })
const all = [...m.orgs]
const o4 = org(m, 'org4')
const honest = all.filter((o) => o !== o4)

interface EvidenceView {
  signer: string
  kind: string
  height: number
  round: number
  blockHashes: (string | null)[]
}
interface TxView {
  hash: string
  type: string
  sender: string
  payload: unknown
}

/** Evidence transactions in blocks from..to on `o`, with the height of the block holding each. */
async function evidenceIn(o: DevnetOrg, from: number, to: number): Promise<{ at: number; tx: TxView; ev: EvidenceView }[]> {
  const c = await clientOf(o)
  const out: { at: number; tx: TxView; ev: EvidenceView }[] = []
  for (let h = from; h <= to; h++) {
    for (const tx of (await c.block(String(h))).txs as TxView[]) if (tx.type === 'evidence') out.push({ at: h, tx, ev: tx.payload as EvidenceView })
  }
  return out
}

t.test('an evidence transaction naming org4 becomes final', async (t) => {
  let found: { at: number; tx: TxView; ev: EvidenceView }[] = []
  let scanned = 0
  await waitFor(
    'evidence against org4 in a final block',
    30_000,
    async () => {
      const head = await maxHeight([all[0] as DevnetOrg])
      found.push(...(await evidenceIn(all[0] as DevnetOrg, scanned + 1, head)))
      scanned = head
      return found.some((e) => e.ev.signer === o4.signKey)
    },
    250,
  )
  found = found.filter((e) => e.ev.signer === o4.signKey)
  const e = found[0]
  if (e === undefined) return
  t.pass(`evidence ${e.tx.hash.slice(0, 8)} final in block ${e.at}: ${e.ev.kind} at height ${e.ev.height} round ${e.ev.round}`)
  t.equal(e.ev.kind, 'prevote', 'org4 equivocated on prevotes')
  t.not(e.ev.blockHashes[0], e.ev.blockHashes[1], 'the two votes differ')
  t.ok(e.ev.height < e.at, 'the evidence is about an earlier height')
  t.not(e.tx.sender, o4.signKey, 'reported by another key than the culprit')
  // The evidence is final on every node, in the same block.
  for (const o of all) {
    const s = await (await clientOf(o)).tx(e.tx.hash, 10_000)
    t.equal(`${s.status}@${s.height}`, `final@${e.at}`, `${o.id} holds it final in block ${e.at}`)
  }
})

t.test('notes submitted to the honest nodes while they report evidence are all final', async (t) => {
  // Three honest nodes report each equivocation and two reports are
  // rejected as duplicates: that must not take the organizations' own
  // transactions down with them (a rejection drops the sender's later nonces).
  const sent: { o: DevnetOrg; hash: string }[] = []
  const until = Date.now() + 5_000
  for (let i = 0; Date.now() < until; i++) {
    for (const o of honest) sent.push({ o, hash: await (await clientOf(o)).submitNote(`note ${i} from ${o.id}`) })
    await sleep(100)
  }
  const lost: string[] = []
  for (const { o, hash } of sent) {
    const s = await (await clientOf(o)).tx(hash, 20_000)
    if (s.status !== 'final') lost.push(`${o.id} ${hash.slice(0, 8)} ${s.status} ${s.error?.code ?? ''} ${s.error?.message ?? ''}`)
  }
  t.same(lost, [], `all ${sent.length} admitted notes are final`)
})

t.test('the chain stays safe and live, and each equivocation is recorded once', async (t) => {
  const start = await maxHeight(all)
  await allAtLeast(all, start + 4, 20_000)
  const s = await sameHead(all, 10_000, start + 4)
  t.pass(`heights keep advancing: all four at ${s.height}`)
  await assertSameChain(t, all, s.height)
  const evs = await evidenceIn(all[0] as DevnetOrg, 1, s.height)
  t.ok(evs.length > 0, `${evs.length} evidence transactions final up to ${s.height}`)
  t.ok(
    evs.every((e) => e.ev.signer === o4.signKey),
    'all of them name org4, none an honest organization',
  )
  const keys = evs.map((e) => `${e.ev.height}/${e.ev.round}/${e.ev.kind}`)
  t.equal(new Set(keys).size, keys.length, 'no equivocation recorded twice')
  const bad = (await Promise.all(honest.map(badLogLines))).flat()
  t.same(bad, [], "no error or safety line in the honest daemons' logs")
})
