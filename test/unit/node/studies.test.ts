import t from 'tap'
import { EventEmitter } from 'node:events'
import type { Block, CommitCertificate, Tx, TxError } from '../../../src/chain/index.js'
import type { TxStatus } from '../../../src/api/index.js'
import type { ChainEvents } from '../../../src/node/index.js'
import { jobError, recheckOnBlocks, waitTxSettled } from '../../../src/node/studies.js'
import { RadError } from '../../../src/util/index.js'

const HASH = 'ab'.repeat(32)
/** Longer than any test here runs: a wait that ends sooner was ended by an event. */
const LONG_MS = 600_000

/** The chain's events and a transaction status the test moves along. */
class FakeChain extends EventEmitter<ChainEvents> {
  status: TxStatus['status'] = 'pending'
  reads = 0
  /** Called inside a status read, before it answers (a block arriving meanwhile). */
  duringRead: (() => void) | undefined
  async txStatus(hash: string): Promise<TxStatus> {
    this.reads++
    const s = this.status
    this.duringRead?.()
    this.duringRead = undefined
    return { hash, status: s }
  }
  block(): void {
    this.emit('block', {} as Block, {} as CommitCertificate)
  }
  reject(id: string): void {
    this.emit('rejected', { id: Buffer.from(id, 'hex') } as unknown as Tx, {} as TxError)
  }
}

/** Lets pending promise reactions run, and nothing else: no timer fires meanwhile. */
async function microtasks(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve()
}

t.test('a registration wait wakes at the block that makes it final', async (t) => {
  const chain = new FakeChain()
  const wait = waitTxSettled(chain, HASH, { timeoutMs: LONG_MS })
  await microtasks()
  t.equal(chain.reads, 1, 'read once, then waiting')
  chain.block()
  await microtasks()
  t.equal(chain.reads, 2, 'read again at a block that does not include it')
  chain.status = 'final'
  chain.block()
  t.equal((await wait).status, 'final')
  t.equal(chain.reads, 3)
  t.equal(chain.listenerCount('block') + chain.listenerCount('rejected'), 0, 'no listener left behind')
})

t.test("it wakes when its own transaction is rejected, not at another's rejection", async (t) => {
  const chain = new FakeChain()
  const wait = waitTxSettled(chain, HASH, { timeoutMs: LONG_MS })
  await microtasks()
  chain.reject('cd'.repeat(32))
  await microtasks()
  t.equal(chain.reads, 1, 'another transaction: not read again')
  chain.status = 'rejected'
  chain.reject(HASH)
  t.equal((await wait).status, 'rejected')
})

t.test('a block that comes while the status is read is not lost', async (t) => {
  const chain = new FakeChain()
  chain.duringRead = () => {
    chain.status = 'final'
    chain.block()
  }
  t.equal((await waitTxSettled(chain, HASH, { timeoutMs: LONG_MS })).status, 'final')
  t.equal(chain.reads, 2)
})

t.test('no block: the wait ends at its deadline, with one last read', async (t) => {
  const chain = new FakeChain()
  const started = Date.now()
  const s = await waitTxSettled(chain, HASH, { timeoutMs: 50 })
  t.equal(s.status, 'pending')
  t.ok(Date.now() - started >= 45, 'not before the deadline')
  t.equal(chain.reads, 2, 'the first read and the one at the deadline: nothing polled in between')
  t.equal(chain.listenerCount('block'), 0)
})

t.test('the signal ends the wait at once', async (t) => {
  const chain = new FakeChain()
  const ac = new AbortController()
  const wait = waitTxSettled(chain, HASH, { timeoutMs: LONG_MS, signal: ac.signal })
  await microtasks()
  ac.abort()
  t.equal((await wait).status, 'pending')
  t.equal(chain.reads, 1)
  t.equal(chain.listenerCount('block'), 0)
})

t.test('recheckOnBlocks: a replica count asked again at each block until the target, the last answer at the deadline', async (t) => {
  const chain = new FakeChain()
  let holders = 1
  let asked = 0
  const check = async (): Promise<number> => {
    asked++
    return holders
  }
  const wait = recheckOnBlocks(chain, check, (n) => n >= 3, { timeoutMs: LONG_MS })
  await microtasks()
  holders = 2
  chain.block()
  await microtasks()
  t.equal(asked, 2)
  holders = 3
  chain.block()
  t.equal(await wait, 3)
  t.equal(asked, 3)

  holders = 1
  asked = 0
  t.equal(await recheckOnBlocks(chain, check, (n) => n >= 3, { timeoutMs: 30 }), 1, 'never enough: the count at the deadline')
  t.equal(asked, 2)
})

t.test('a failed job reports a full disk in plain words, wherever the error came from', async (t) => {
  const enospc = Object.assign(new Error("ENOSPC: no space left on device, write '/data/chunks/ab/cd'"), { code: 'ENOSPC', path: '/data/chunks/ab/cd' })
  const direct = jobError(enospc)
  t.equal(direct.code, 'STUDY_NO_SPACE')
  t.match(direct.message, /^no space left on the disk holding \/data\/chunks\/ab\/cd: free some/)
  t.equal(jobError(new Error('packing failed', { cause: enospc })).code, 'STUDY_NO_SPACE', 'found among the causes')
  t.equal(jobError(Object.assign(new Error('quota'), { code: 'EDQUOT' })).code, 'STUDY_NO_SPACE', 'a user quota too')
  t.same(
    jobError(new RadError('CHUNK_QUOTA_EXCEEDED', 'the chunk store is full')),
    { code: 'CHUNK_QUOTA_EXCEEDED', message: 'the chunk store is full' },
    "radchain's own code is kept",
  )
  t.same(jobError(new Error('something else')), { code: 'STUDY_FAILED', message: 'something else' })
})
