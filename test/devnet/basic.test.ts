// A real devnet of four daemon processes: agreement on head and state,
// transactions through every node, admission of libp2p peers, and junk from
// an admitted key. Needs `npx tsc -p .` first (daemons run from dist/).
import './helpers.js'
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeTrusted, noteTx, signTx, signVote, u64, type Tx } from '../../src/chain/index.js'
import { encodeMessage } from '../../src/consensus/messages.js'
import { Ed25519Signer, loadKeystore, readPassphrase } from '../../src/crypto/index.js'
import { P2PNode, peerIdFromOrgKey, protocolId } from '../../src/p2p/index.js'
import { fromHex, nullLogger, sleep, toHex } from '../../src/util/index.js'
import { clientOf, pidOf, startOrg, stopOrg } from '../../src/devnet/index.js'
import { BlockWatch, allAtLeast, badLogLines, logLines, maxGap, newDevnet, org, sameHead, statuses, waitFor } from './helpers.js'

const BASE_PORT = 8100

// Under a full garbage collection every second in every daemon (see newDevnet).
const { m } = await newDevnet(t, 'basic', { orgs: 4, basePort: BASE_PORT, gcEveryMs: 1000 })
const [o1, o2, o3, o4] = ['org1', 'org2', 'org3', 'org4'].map((id) => org(m, id))
if (o1 === undefined || o2 === undefined || o3 === undefined || o4 === undefined) throw new Error('devnet lacks an org')
const all = [o1, o2, o3, o4]
const addrOf = (o: typeof o1): string => `/ip4/127.0.0.1/tcp/${o.p2pPort}`

t.test('all four reach the same head hash and state root at the same height', async (t) => {
  const s = await sameHead(all, 15_000, 2)
  t.ok(s.height >= 2, `identical head at height ${s.height}`)
  // The stored blocks agree too, header by header, and on the certificate's block.
  const views = await Promise.all(all.map(async (o) => (await clientOf(o)).block(String(s.height))))
  for (const [i, b] of views.entries()) {
    t.equal(b.hash, s.headHash, `${all[i]?.id} stores the head block`)
    t.equal(b.stateRoot, s.stateRoot, `${all[i]?.id} has the same state root`)
    t.equal((b.certificate as { blockHash: string }).blockHash, s.headHash, `${all[i]?.id}'s certificate names the block`)
  }
  // And they keep agreeing as the chain grows.
  const later = await sameHead(all, 15_000, s.height + 3)
  t.ok(later.height >= s.height + 3, `still identical at height ${later.height}`)
  for (const x of await statuses(all)) t.equal(x?.peers, 3, 'full mesh: every node has 3 peers')
})

t.test('an idle chain keeps making heartbeat blocks, and waits end at their deadline', async (t) => {
  // No transactions: round 0 of every height starts on the heartbeat timer alone.
  const c = await clientOf(o2)
  const w = new BlockWatch(c)
  t.teardown(() => w.stop())
  await w.opened
  const from = Date.now()
  await waitFor('6 heartbeat blocks', 15_000, () => w.since(from).length >= 6, 100)
  const gap = maxGap(w.since(from))
  t.ok(gap < 2_000, `6 idle blocks, largest gap ${gap} ms`)
  // A wait for a transaction nobody sent ends with its deadline, not the client's.
  const started = Date.now()
  const s = await c.tx('ab'.repeat(32), 700)
  const took = Date.now() - started
  t.equal(s.status, 'unknown', 'unknown transaction')
  t.ok(took >= 600 && took < 3_000, `the 700 ms wait returned after ${took} ms`)
})

t.test('transactions sent to each node become final on all four at the same height', async (t) => {
  const { chainId } = m
  const hashes: string[] = []
  for (const [k, o] of all.entries()) {
    const c = await clientOf(o)
    for (let i = 0; i < 5; i++) hashes.push(await c.submitNote(`note ${i} via ${o.id}`))
    // A batch of notes pre-signed by an outside key, in nonce order.
    const signer = new Ed25519Signer(new Uint8Array(randomBytes(32)))
    const txs: Tx[] = []
    for (let n = 0; n < 20; n++) txs.push(signTx(signer, { chainId, type: noteTx.name, nonce: n, payload: { text: `batch ${k} #${n}` } }))
    const results = await c.submitTxs(txs.map((x) => x.bytes))
    t.same(
      results,
      txs.map((x) => ({ hash: toHex(x.id) })),
      `${o.id} admits the whole batch`,
    )
    hashes.push(...txs.map((x) => toHex(x.id)))
  }
  t.equal(new Set(hashes).size, 4 * 25, 'distinct transactions')
  const where = new Map<string, string>()
  const bad: string[] = []
  await Promise.all(
    all.map(async (o) => {
      const c = await clientOf(o)
      const st = await Promise.all(hashes.map((h) => c.tx(h, 20_000)))
      for (const [i, s] of st.entries()) {
        const h = hashes[i] as string
        if (s.status !== 'final') {
          bad.push(`${o.id} ${h.slice(0, 8)} ${s.status}`)
          continue
        }
        const at = `${s.height}/${s.blockHash}/${s.index}`
        const prev = where.get(h)
        if (prev === undefined) where.set(h, at)
        else if (prev !== at) bad.push(`${h.slice(0, 8)}: ${prev} vs ${o.id} ${at}`)
      }
    }),
  )
  t.same(bad, [], 'every transaction is final on every node, in the same block at the same index')
  t.equal(where.size, hashes.length, 'all located')
})

t.test('a libp2p peer with an unknown key opens no radchain protocol', async (t) => {
  const { chainId } = m
  const target = fromHex(o1.signKey)
  // Through radchain's own network layer, which would admit anyone on its side.
  const rogue = new P2PNode(
    {
      listen: ['/ip4/127.0.0.1/tcp/0'],
      identitySeed: new Uint8Array(randomBytes(32)),
      networkId: chainId,
      isAllowed: () => true,
      peersToDial: () => [{ publicKey: target, addrs: [addrOf(o1)] }],
      dialIntervalMs: 100,
    },
    { logger: nullLogger() },
  )
  let received = 0
  rogue.channel('consensus', { maxMessageBytes: 1 << 20, onMessage: () => received++ })
  rogue.channel('tx', { maxMessageBytes: 1 << 20, onMessage: () => received++ })
  await rogue.start()
  t.teardown(() => rogue.stop())
  const rogueKey = toHex(rogue.publicKey)
  // Several dial rounds (100 ms apart). The rogue side may see a connection
  // for an instant (the handshake completes before org1's gate closes it),
  // so it keeps trying to push junk on both channels meanwhile.
  const junk = encodeTrusted(['vote', 'junk'])
  const until = Date.now() + 2_000
  let polls = 0
  let onRogue = 0
  let onOrg1 = 0
  let queued = 0
  while (Date.now() < until) {
    polls++
    if (rogue.peers().length > 0) onRogue++
    queued += rogue.broadcast('consensus', junk) + rogue.broadcast('tx', junk)
    if ((await (await clientOf(o1)).peers()).some((p) => p.publicKey === rogueKey)) onOrg1++
    await sleep(100)
  }
  t.comment(`rogue side: a connection seen in ${onRogue} of ${polls} polls, junk queued ${queued} times`)
  t.equal(onOrg1, 0, `org1 never lists the rogue peer (${polls} polls over 2 s of dialing)`)
  await waitFor('the rogue peer to hold no connection', 3_000, () => rogue.peers().length === 0)
  const mentions = (await logLines(o1)).filter((l) => JSON.stringify(l).includes(rogue.peerId))
  t.same(mentions, [], 'org1 neither connected, penalized nor read anything from the rogue peer (info log)')
  await t.rejects(
    rogue.request('sync', target, encodeTrusted(['status']), { timeoutMs: 2_000 }),
    { name: 'P2PError', code: 'P2P_NO_PEER' },
    'sync request refused',
  )
  t.equal(rogue.broadcast('consensus', encodeTrusted(['vote'])), 0, 'no consensus message can be queued')
  t.equal(rogue.broadcast('tx', encodeTrusted([])), 0, 'no transaction batch can be queued')
  t.equal(received, 0, 'the devnet node sent the rogue peer nothing')

  // A bare libp2p node that tries each protocol directly.
  const raw = await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
  t.teardown(() => raw.stop())
  const ma = multiaddr(`${addrOf(o1)}/p2p/${peerIdFromOrgKey(target).toString()}`)
  for (const name of ['consensus', 'tx', 'sync']) {
    let opened = false
    try {
      const s = await raw.dialProtocol(ma, protocolId(chainId, name), { signal: AbortSignal.timeout(5_000) })
      opened = true
      s.abort(new Error('test'))
    } catch {
      // refused: the gate closes the connection after the handshake
    }
    t.notOk(opened, `${name}: no stream opens`)
  }
  const s1 = await (await clientOf(o1)).status()
  t.equal(s1.peers, 3, 'org1 still has exactly its 3 organizations as peers')
})

t.test('junk from an admitted key (org1 impersonated) penalizes it and never stops the chain', async (t) => {
  const { chainId } = m
  const keys = await loadKeystore(join(o1.dir, 'keystore.json'), await readPassphrase(join(o1.dir, 'passphrase'), {}))
  t.equal(toHex(keys.signer.publicKey), o1.signKey, 'org1 keystore loaded')
  t.ok(await stopOrg(o1), 'real org1 stopped')
  t.teardown(async () => {
    if ((await pidOf(o1)) === undefined) await startOrg(o1)
  })
  const [k2, k3, k4] = [o2, o3, o4].map((o) => fromHex(o.signKey)) as [Uint8Array, Uint8Array, Uint8Array]
  const imp = new P2PNode(
    {
      listen: ['/ip4/127.0.0.1/tcp/0'],
      identitySeed: new Uint8Array(keys.identitySeed),
      networkId: chainId,
      isAllowed: () => true,
      peersToDial: () => [o2, o3, o4].map((o) => ({ publicKey: fromHex(o.signKey), addrs: [addrOf(o)] })),
      dialIntervalMs: 100,
    },
    { logger: nullLogger() },
  )
  let fromOrg2 = 0
  imp.channel('consensus', {
    maxMessageBytes: 32 << 20,
    onMessage: (from) => {
      if (toHex(from) === o2.signKey) fromOrg2++
    },
  })
  await imp.start()
  t.teardown(() => imp.stop())
  const connected = (k: Uint8Array): boolean => imp.peers().some((p) => toHex(p.publicKey) === toHex(k))
  await waitFor('the impostor connected to org2, org3 and org4', 10_000, () => connected(k2) && connected(k3) && connected(k4))
  await waitFor('org2 sending consensus messages to the impostor', 5_000, () => fromOrg2 > 0)
  t.pass('org2 admits the impostor as org1 and sends it consensus messages')
  const penalties = async (o: typeof o1): Promise<string[]> =>
    (await logLines(o)).filter((l) => l.msg === 'peer penalized' || l.msg === 'peer banned').map((l) => String(l.reason ?? l.msg))

  const before = await statuses([o2, o3, o4])
  const syncReq = (peer: Uint8Array, req: Uint8Array): Promise<Uint8Array> => imp.request('sync', peer, req, { timeoutMs: 5_000, maxResponseBytes: 40 << 20 })
  // A valid request works: the errors below are about the bytes, not the channel.
  t.ok((await syncReq(k2, encodeTrusted(['status']))).length > 0, 'a valid sync status request is answered')
  // Penalties add up to a ban at -100: org2 gets -10 -10 -20 -20 -50; org3 and org4 one -50 each.
  const blocksReq = encodeTrusted(['blocks', u64(1), 4])
  await t.rejects(syncReq(k2, new Uint8Array(randomBytes(40))), { code: 'P2P_REMOTE_ERROR' }, 'garbage sync request refused')
  await t.rejects(syncReq(k2, blocksReq.subarray(0, blocksReq.length - 1)), { code: 'P2P_REMOTE_ERROR' }, 'truncated sync request refused')
  await t.rejects(syncReq(k3, new Uint8Array(1024).fill(0x93)), 'oversized (1 KiB > 256 B) sync request refused')

  const head = before[0]?.height ?? 1
  const vote = signVote(keys.signer, chainId, 'prevote', head + 1, 0, null)
  const full = encodeMessage({ type: 'vote', vote })
  t.ok(imp.send('consensus', k2, new Uint8Array(randomBytes(300))), 'garbage queued')
  t.ok(imp.send('consensus', k2, full.subarray(0, full.length - 9)), 'truncated vote queued')
  // A vote for a past height is dropped unchecked: aim at the height after org4's current one,
  // held until org4 gets there (about a heartbeat) and then checked.
  const h4 = (await (await clientOf(o4)).status()).consensus?.height ?? head + 1
  const badVote = signVote(keys.signer, chainId, 'prevote', h4 + 1, 0, null)
  t.ok(
    imp.send('consensus', k4, encodeMessage({ type: 'vote', vote: { ...badVote, signature: new Uint8Array(64).fill(7) } })),
    'vote with a bad signature queued',
  )
  await waitFor('org2 to penalize 4 times', 10_000, async () => (await penalties(o2)).length >= 4)
  t.ok(imp.send('consensus', k2, new Uint8Array(8 * 1024 * 1024 + 4096 + 64)), 'frame above the channel bound queued')
  await waitFor('org2 to ban the impostor and drop it', 15_000, () => !connected(k2))
  const p2 = await penalties(o2)
  t.equal(p2.filter((r) => /^request refused: CODEC_/.test(r)).length, 2, `org2 penalized both bad sync requests (${p2.join('; ')})`)
  t.equal(p2.filter((r) => /^malformed consensus message/.test(r)).length, 2, 'org2 penalized both malformed consensus messages')
  t.ok(p2.includes('peer banned'), 'org2 banned the impostor after the oversized frame')
  await waitFor('org3 to penalize the oversized request', 5_000, async () => (await penalties(o3)).length >= 1)
  await waitFor('org4 to penalize the bad signature', 5_000, async () => (await penalties(o4)).some((r) => /bad signature/.test(r)))
  t.notOk((await penalties(o3)).includes('peer banned'), 'org3 did not ban for one offence')
  t.ok(connected(k3) && connected(k4), 'org3 and org4 keep the connection')

  // Every node keeps running and finalizing.
  for (const o of [o2, o3, o4]) t.ok((await pidOf(o)) !== undefined, `${o.id} still running`)
  const target = Math.max(...before.map((s) => s?.height ?? 0)) + 2
  await allAtLeast([o2, o3, o4], target, 15_000)
  t.pass(`org2, org3 and org4 finalized up to ${target}`)
  await imp.stop()

  // The real org1 comes back (org2 refuses its key for the ban period) and catches up.
  await startOrg(o1)
  const s = await sameHead(all, 20_000, target + 1)
  t.ok(s.height > target, `all four agree again at height ${s.height}`)
  const bad = (await Promise.all(all.map(badLogLines))).flat()
  t.same(bad, [], 'no error or safety line in any daemon log')
})
