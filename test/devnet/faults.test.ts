// Crashes, a lost quorum, a 2|2 partition and a wiped node on a real devnet
// of four daemon processes (docs/CONSENSUS.md "Invariants and the tests that show them";
// docs/ARCHITECTURE.md "Product invariants": Safety, Liveness).
// One devnet, each subtest starting from the state the previous one left.
// Needs `npx tsc -p .` first (daemons run from dist/).
import './helpers.js'
import t from 'tap'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { clientOf, devnetHeal, devnetPartition, pidOf, startOrg, stopOrg, type DevnetOrg } from '../../src/devnet/index.js'
import { DATADIR_FILES, loadConfig } from '../../src/node/index.js'
import { sleep } from '../../src/util/index.js'
import {
  BlockWatch,
  allAtLeast,
  assertSameChain,
  badLogLines,
  certRound,
  certSigners,
  describe,
  logLines,
  maxGap,
  maxHeight,
  newDevnet,
  sameHead,
  statuses,
  waitFor,
} from './helpers.js'

const BASE_PORT = 8200
const HEARTBEAT_MS = 1000
// Long enough for several rounds of timeouts on each side (round r waits
// timeoutPropose + r * delta); the seeded fault run (npm run fault) holds partitions longer.
const PARTITION_MS = 8_000

const { dir, m } = await newDevnet(t, 'faults', { orgs: 4, basePort: BASE_PORT, blockIntervalMs: HEARTBEAT_MS })
// The devnet's consensus timing, as written in the org configs.
const timing = (await loadConfig((m.orgs[0] as DevnetOrg).dir)).consensus
// A dead round-0 proposer costs the heartbeat, the propose timeout and the precommit timeout of round 0.
const FIRST_GAP_MS = HEARTBEAT_MS + timing.timeoutProposeMs + timing.timeoutVoteMs + 1000
const all = [...m.orgs]
const watches: BlockWatch[] = []
t.teardown(() => Promise.all(watches.map((w) => w.stop())))
const watch = (c: Awaited<ReturnType<typeof clientOf>>): BlockWatch => {
  const w = new BlockWatch(c)
  watches.push(w)
  return w
}

/**
 * The proposer of round 0 at the height after `head` (default: `o`'s head),
 * by the rotation rule (src/chain/rotation.ts) when nobody is jailed: the
 * authority whose last turn is oldest (never = 0), ties by id.
 */
async function nextProposer(o: DevnetOrg, head?: number): Promise<DevnetOrg> {
  const c = await clientOf(o)
  const from = head ?? (await c.status()).height
  const lastTurn = new Map<string, number>()
  for (let h = from; h >= 1 && lastTurn.size < all.length; h--) {
    const p = (await c.block(String(h))).proposer as string
    if (!lastTurn.has(p)) lastTurn.set(p, h)
  }
  return [...all].sort((a, b) => (lastTurn.get(a.signKey) ?? 0) - (lastTurn.get(b.signKey) ?? 0) || (a.id < b.id ? -1 : 1))[0] as DevnetOrg
}

let victim: DevnetOrg
let observer: DevnetOrg

t.test('killing the next proposer costs one propose timeout, then blocks keep coming', async (t) => {
  await sameHead(all, 15_000, 3)
  const ws = await Promise.all(all.map(async (o) => watch(await clientOf(o))))
  await Promise.all(ws.map((w) => w.opened))
  // Right after a block is final, the next proposer waits out the heartbeat: kill it then.
  const w0 = ws[0] as BlockWatch
  const n0 = w0.blocks.length
  await waitFor('a fresh block', 5_000, () => w0.blocks.length > n0, 10)
  victim = await nextProposer(all[0] as DevnetOrg)
  await stopOrg(victim, 'SIGKILL')
  const killedAt = Date.now()
  const last = w0.blocks[w0.blocks.length - 1]
  t.comment(`killed ${victim.id} ${killedAt - (last?.at ?? 0)} ms after block ${last?.height}`)
  observer = all.find((o) => o !== victim) as DevnetOrg
  const w = ws[all.indexOf(observer)] as BlockWatch
  // Observe the survivors for 8 s.
  await sleep(8_000)
  t.equal(w.error, undefined, 'the event stream stayed up')
  const before = w.blocks.filter((b) => b.at < killedAt)
  const after = w.blocks.filter((b) => b.at >= killedAt)
  const prev = before[before.length - 1]
  const first = after[0]
  if (prev === undefined || first === undefined) {
    t.fail(`no block after the kill (${after.length})`)
    return
  }
  t.ok(after.length >= all.length + 1, `${after.length} blocks in 8 s with ${victim.id} dead`)
  // The kill may land just after the victim's proposal went out (the head
  // moved while we looked): that block is final after the kill but was made
  // before it, and the victim's next turn comes once every other authority
  // has had one. So the timeout falls on the first height after the kill
  // whose round-0 proposer is the victim, within the first n + 1 blocks.
  const victimBlocks = after.filter((b) => b.proposer === victim.signKey)
  t.ok(
    victimBlocks.every((b) => b === first && b.time < killedAt),
    `${victim.id} proposes nothing while dead (its blocks after the kill: ${victimBlocks.map((b) => `${b.height} made ${b.time - killedAt} ms after it`).join(', ') || 'none'})`,
  )
  const rounds = await Promise.all(after.slice(0, all.length + 1).map((b) => certRound(observer, b.height)))
  const k = rounds.findIndex((r) => r >= 1)
  const timed = after[Math.max(0, k)] as { at: number; height: number }
  const turn = await nextProposer(observer, timed.height - 1)
  t.ok(
    k >= 0 && turn === victim && rounds.slice(0, k).every((r) => r === 0),
    `the first block after the kill that needed a second round is the victim's turn (rounds ${rounds.join(', ')}; round-0 proposer at ${timed.height}: ${turn.id})`,
  )
  const beforeTimed = k > 0 ? (after[k - 1] as { at: number }) : prev
  const firstGap = timed.at - beforeTimed.at
  t.ok(firstGap <= FIRST_GAP_MS, `the block after the timeout came ${firstGap} ms after the previous one (bound ${FIRST_GAP_MS})`)
  const rest = after.slice(Math.max(0, k))
  const gaps = rest.slice(1).map((b, i) => b.at - (rest[i] as { at: number }).at)
  t.ok(maxGap(rest) <= 1500, `after that timeout no gap above 1.5 s (gaps ${gaps.join(', ')} ms)`)
  t.same(
    after.map((b) => b.height),
    after.map((_, i) => first.height + i),
    'consecutive heights',
  )
})

let second: DevnetOrg
let survivors: DevnetOrg[]

t.test('two of four down: nothing final, heads agree; one back: a block on all three within 3 s', async (t) => {
  survivors = all.filter((o) => o !== victim)
  second = survivors.find((o) => o !== observer) as DevnetOrg
  survivors = survivors.filter((o) => o !== second)
  const pids = await Promise.all(survivors.map((o) => pidOf(o)))
  const ws = await Promise.all(survivors.map(async (o) => watch(await clientOf(o))))
  await Promise.all(ws.map((w) => w.opened))
  await stopOrg(second, 'SIGKILL')
  const head = await sameHead(survivors, 5_000)
  const quietFrom = Date.now()
  t.comment(`killed ${second.id}; ${survivors.map((o) => o.id).join(' and ')} stay at height ${head.height}`)
  await sleep(5_000)
  const st = await statuses(survivors)
  t.same(
    ws.map((w) => w.since(quietFrom).map((b) => b.height)),
    survivors.map(() => []),
    'no block final on either survivor for 5 s',
  )
  t.ok(
    st.every((s) => s !== undefined && s.height === head.height && s.headHash === head.headHash),
    `heads still agree: ${describe(survivors, st)}`,
  )

  // The first victim comes back; the survivors are not touched.
  await startOrg(victim)
  const backAt = Date.now()
  const live = [...survivors, victim]
  let reached = false
  try {
    await allAtLeast(live, head.height + 1, 3_000)
    reached = true
  } catch (err) {
    t.fail(String(err))
  }
  const took = Date.now() - backAt
  if (reached) t.ok(took <= 3_000, `height ${head.height + 1} final on all three ${took} ms after ${victim.id} answered`)
  else {
    // How long it does take, for the report.
    await allAtLeast(live, head.height + 1, 30_000).then(
      () => t.comment(`height ${head.height + 1} reached after ${Date.now() - backAt} ms`),
      () => t.comment('no progress in 30 s'),
    )
  }
  t.same(await Promise.all(survivors.map((o) => pidOf(o))), pids, 'the survivors were never restarted')
  const s = await sameHead(live, 5_000)
  t.ok(s.height > head.height, `the three live ones agree at ${s.height}`)
})

t.test('the last one back: all four agree', async (t) => {
  await startOrg(second)
  const s = await sameHead(all, 15_000, (await maxHeight(all)) + 1)
  t.ok(s.height > 0, `all four at ${s.height}`)
})

t.test(`partition 2|2 for ${PARTITION_MS / 1000} s: no progress, no conflict; heal: progress within 3 s, one chain`, async (t) => {
  const ws = await Promise.all(all.map(async (o) => watch(await clientOf(o))))
  await Promise.all(ws.map((w) => w.opened))
  await devnetPartition(dir, ['org1', 'org2'], ['org3', 'org4'])
  await waitFor('each node to have exactly one peer', 5_000, async () => (await statuses(all)).every((s) => s?.peers === 1))
  const cutAt = Date.now()
  const atCut = await maxHeight(all)
  // A height being decided at the cut may still finish on one side (within a
  // second); nothing above it, ever.
  const late: string[] = []
  let conflict = ''
  let top = atCut
  const until = cutAt + PARTITION_MS
  while (Date.now() < until) {
    const st = await statuses(all)
    const h = Math.max(...st.map((s) => s?.height ?? -1))
    if (h > atCut + 1 || (h > atCut && Date.now() - cutAt > 1_000 && h > top)) late.push(`${describe(all, st)} at +${Date.now() - cutAt} ms`)
    top = Math.max(top, h)
    for (const a of st)
      for (const b of st) if (a !== undefined && b !== undefined && a.height === b.height && a.headHash !== b.headHash) conflict = describe(all, st)
    await sleep(250)
  }
  const frozen = top
  t.same(late, [], `no progress during the partition (height ${atCut} at the cut, ${frozen} at the end)`)
  t.equal(conflict, '', 'no two nodes at one height with different heads')
  const newBlocks = ws.map((w) => w.since(cutAt).map((b) => b.height))
  t.ok(
    newBlocks.every((l) => l.every((h) => h <= frozen)),
    `no block above ${frozen} announced by any node (${JSON.stringify(newBlocks)})`,
  )
  const during = await statuses(all)
  t.comment(`at heal: ${describe(all, during)}`)

  await devnetHeal(dir)
  const healedAt = Date.now()
  await waitFor('a new height after the heal', 3_000, async () => (await maxHeight(all)) > frozen, 50)
  t.pass(`height ${frozen + 1} final ${Date.now() - healedAt} ms after the heal`)
  const s = await sameHead(all, 5_000 - (Date.now() - healedAt), frozen + 1)
  t.pass(`identical heads (height ${s.height}) ${Date.now() - healedAt} ms after the heal`)
  await assertSameChain(t, all, s.height)
})

t.test('a node restarted with a wiped data dir syncs and signs again', async (t) => {
  const o3 = all.find((o) => o.id === 'org3') as DevnetOrg
  const others = all.filter((o) => o !== o3)
  await stopOrg(o3)
  // Let the height org3 may have voted at be decided without it, so its fresh start cannot sign twice.
  const stoppedAt = await maxHeight(others)
  await allAtLeast(others, stoppedAt + 2, 10_000)
  await rm(join(o3.dir, DATADIR_FILES.db), { recursive: true, force: true })
  await rm(join(o3.dir, DATADIR_FILES.wal), { force: true })
  await startOrg(o3)
  const opened = (await logLines(o3)).filter((l) => l.msg === 'ledger opened').pop()
  t.equal(opened?.height, 0, 'org3 opened an empty ledger (genesis only)')
  const s = await sameHead(all, 20_000, stoppedAt + 2)
  t.pass(`org3 synced: all four at ${s.height}`)
  let where = ''
  await waitFor(
    'org3 among certificate signers on another node',
    20_000,
    async () => {
      const head = await maxHeight(others)
      for (let h = s.height + 1; h <= head; h++) {
        for (const o of others) {
          if ((await certSigners(o, h).catch(() => [] as string[])).includes(o3.signKey)) {
            where = `${o.id} height ${h}`
            return true
          }
        }
      }
      return false
    },
    300,
  )
  t.pass(`org3's key signs certificates again (${where})`)
  const final = await sameHead(all, 10_000)
  await assertSameChain(t, all, final.height)
  const bad = (await Promise.all(all.map(badLogLines))).flat()
  t.same(bad, [], 'no error or safety line in any daemon log')
})
