// The --deliver-to watcher (src/node/dimse.ts DimseDeliveries): a lease
// asked for with a delivery is sent once granted and active, with its scope;
// a denied lease is dropped; a failed send is tried again, then given up; the
// pending deliveries survive a restart. Chain and sender are fakes.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LeaseRecord } from '../../../src/chain/index.js'
import type { StudySendJobView } from '../../../src/api/index.js'
import { DimseDeliveries, type DeliveryChain } from '../../../src/node/dimse.js'
import { createLogger, sleep } from '../../../src/util/index.js'

const dir = await mkdtemp(join(tmpdir(), 'radchain-deliveries-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

const STUDY = new Uint8Array(16).fill(7)
function lease(status: LeaseRecord['status'], expiry = 1e15): LeaseRecord {
  return {
    leaseId: new Uint8Array(32),
    studyId: STUDY,
    requester: 'org-b',
    scope: 'full',
    durationMs: 1,
    purpose: '',
    status,
    requestedAt: 0,
    requestHeight: 1,
    approved: false,
    grantedAt: 0,
    expiry,
    envelope: status === 'granted' ? new Uint8Array(32) : null,
    endedAt: 0,
    reason: '',
  }
}

class FakeChain extends EventEmitter implements DeliveryChain {
  leases = new Map<string, LeaseRecord>()
  now = 1000
  override on(ev: 'block', fn: () => void): this {
    return super.on(ev, fn)
  }
  override off(ev: 'block', fn: () => void): this {
    return super.off(ev, fn)
  }
  lease(id: string): LeaseRecord | undefined {
    return this.leases.get(id)
  }
  time(): number {
    return this.now
  }
}

/** A sender that records its calls and ends each job as told. */
class FakeSender {
  calls: { studyId: string; to: string; scope: string }[] = []
  outcome: 'done' | 'failed' = 'done'
  async start(studyId: string, opts: { to: string; scope: string; onEnd?: (v: StudySendJobView) => void }): Promise<string> {
    this.calls.push({ studyId, to: opts.to, scope: opts.scope })
    const v: StudySendJobView = {
      id: String(this.calls.length),
      kind: 'send',
      state: this.outcome,
      studyId,
      scope: 'full',
      to: opts.to,
      chunks: 1,
      chunkCount: 1,
      total: 2,
      sent: this.outcome === 'done' ? 2 : 0,
      failed: 0,
      warning: 0,
      results: [],
      error: this.outcome === 'done' ? null : { code: 'DIMSE_TIMEOUT', message: 'no answer' },
    }
    setImmediate(() => opts.onEnd?.(v))
    return v.id
  }
}

async function until(fn: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!fn() && Date.now() < deadline) await sleep(10)
  return fn()
}

const logger = createLogger({ level: 'silent' })

t.test('waits for the grant, sends with the lease scope, once; a denied lease is dropped', async (t) => {
  const file = join(dir, 'a.json')
  const chain = new FakeChain()
  const sender = new FakeSender()
  const d = new DimseDeliveries({ file, dataDir: dir }, { chain, sender, logger })
  await d.start()
  t.teardown(() => d.stop())
  await d.add('aa', 'PACS')
  await d.add('bb', 'PACS')
  chain.leases.set('aa', lease('requested'))
  chain.emit('block')
  await sleep(50)
  t.equal(sender.calls.length, 0, 'nothing sent before the grant')
  chain.leases.set('aa', lease('granted'))
  chain.leases.set('bb', lease('denied'))
  chain.emit('block')
  t.ok(await until(() => d.list().find((x) => x.leaseId === 'aa')?.state === 'delivered'), 'delivered once granted')
  t.same(sender.calls, [{ studyId: '07'.repeat(16), to: 'PACS', scope: 'full' }], 'the study, to the peer, with the scope of the lease')
  t.equal(d.list().find((x) => x.leaseId === 'bb')?.state, 'dropped', 'a denied lease: dropped')
  chain.emit('block')
  await sleep(50)
  t.equal(sender.calls.length, 1, 'not sent twice')
  const saved = async (): Promise<string[][]> =>
    (JSON.parse(await readFile(file, 'utf8')) as { leaseId: string; to: string; state: string }[]).map((x) => [x.leaseId, x.to, x.state]).sort()
  for (let i = 0; i < 100 && JSON.stringify(await saved()).includes('sending'); i++) await sleep(10)
  t.same(
    await saved(),
    [
      ['aa', 'PACS', 'delivered'],
      ['bb', 'PACS', 'dropped'],
    ],
    'kept in the data dir: lease ids, AE titles, states',
  )
})

t.test('a lease that ended before it was granted is dropped; a pending delivery survives a restart', async (t) => {
  const file = join(dir, 'b.json')
  const chain = new FakeChain()
  const sender = new FakeSender()
  const first = new DimseDeliveries({ file, dataDir: dir }, { chain, sender, logger })
  await first.start()
  await first.add('cc', 'PACS')
  await first.add('dd', 'PACS')
  first.stop()
  chain.leases.set('dd', lease('granted', 500))
  chain.leases.set('cc', lease('granted'))
  const again = new DimseDeliveries({ file, dataDir: dir }, { chain, sender, logger })
  await again.start()
  t.teardown(() => again.stop())
  t.ok(await until(() => again.list().find((x) => x.leaseId === 'cc')?.state === 'delivered'), 'the delivery recorded before the restart is made')
  t.equal(again.list().find((x) => x.leaseId === 'dd')?.state, 'dropped', 'an expired lease: dropped')
})

t.test('a failed send is retried later, then given up', async (t) => {
  const file = join(dir, 'c.json')
  const chain = new FakeChain()
  const sender = new FakeSender()
  sender.outcome = 'failed'
  const d = new DimseDeliveries({ file, dataDir: dir }, { chain, sender, logger })
  await d.start()
  t.teardown(() => d.stop())
  chain.leases.set('ee', lease('granted'))
  await d.add('ee', 'PACS')
  t.ok(await until(() => d.list()[0]?.state === 'waiting' && d.list()[0]?.attempts === 1), 'failed once: waiting again')
  chain.emit('block')
  await sleep(50)
  t.equal(sender.calls.length, 1, 'not retried before its time')
})
