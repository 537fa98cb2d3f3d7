import '../../src/util/polyfill.js'
import t from 'tap'
import { cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DOMAIN, loadKeystore, readPassphrase, sha256, signingBytes } from '../../src/crypto/index.js'
import { clientOf, repoRoot, stopOrg } from '../../src/devnet/index.js'
import {
  CHUNK_PROTOCOLS,
  P2PNode,
  decodeList,
  encodeLeaseChunkRequest,
  encodeObjectRequest,
  encodeStudyRequest,
  isP2PError,
  listResponseBytes,
} from '../../src/p2p/index.js'
import { equalBytes, fromHex, nullLogger, toHex } from '../../src/util/index.js'
import { jsonOf, runCli } from '../integration/helpers/cli.js'
import { newDevnet, org, waitFor } from './helpers.js'

const LEASE_MS = 20_000

t.test(
  "the lessee's own client fetches under a lease: the holder puts what it served on the ledger; a claim backdated after the end is a violation",
  async (t) => {
    const { m } = await newDevnet(t, 'lease-served', {
      orgs: 4,
      basePort: 8900,
      chunkSize: 4096,
      blockIntervalMs: 500,
      config: {
        // The access records counted here are those of `study get`; DICOMweb's own fetch of a leased study is tested in dicomweb-lease.test.ts.
        dicomweb: { showLeased: false },
        swarm: { reconcileMs: 300, durableTimeoutMs: 30_000 },
      },
    })
    const o1 = org(m, 'org1')
    const work = await mkdtemp(join(tmpdir(), 'radchain-served-'))
    t.teardown(() => rm(work, { recursive: true, force: true }))
    const cli = (o: { dir: string }, args: string[]): ReturnType<typeof runCli> => runCli([...args, '--node', o.dir], { timeoutMs: 90_000 })

    const input = join(work, 'input')
    await cp(join(repoRoot(), 'test/vectors/dicom/study-77654033/CT2'), input, { recursive: true })
    const add = await cli(o1, ['study', 'add', input, '--json'])
    t.equal(add.code, 0, add.stderr)
    const added = jsonOf<{ studyId: string; holders: string[] }[]>(t, add)[0]
    const sid = added?.studyId ?? ''
    const lesseeOrg = m.orgs.find((o) => !(added?.holders ?? []).includes(o.id))
    if (lesseeOrg === undefined) throw new Error('every organization holds the study')
    const c1 = await clientOf(o1)

    // The lessee asks; the custodian (no owner: it decides) grants once the lessee's envelope key is on the ledger.
    const req = await cli(lesseeOrg, [
      'lease',
      'request',
      sid,
      '--scope',
      'images',
      '--duration',
      `${LEASE_MS / 1000}s`,
      '--purpose',
      'second opinion',
      '--json',
    ])
    t.equal(req.code, 0, req.stderr)
    const leaseId = jsonOf<{ leaseId: string }>(t, req).leaseId
    await waitFor('the custodian grants', 30_000, async () => (await cli(o1, ['lease', 'grant', leaseId, '--json'])).code === 0, 500)
    const lease = (await c1.leases('incoming')).find((l) => l.leaseId === leaseId)
    t.equal(lease?.status, 'granted')
    const study = await c1.study(sid)

    // From here on the lessee's daemon is down: whatever reaches the ledger about this lease, its node did not send.
    await stopOrg(lesseeOrg)
    const keys = await loadKeystore(join(lesseeOrg.dir, 'keystore.json'), await readPassphrase(join(lesseeOrg.dir, 'passphrase')))
    const holderKey = fromHex(o1.signKey)
    const client = new P2PNode(
      {
        listen: [],
        identitySeed: keys.identitySeed,
        networkId: m.chainId,
        isAllowed: (k) => equalBytes(k, holderKey),
        peersToDial: () => [{ publicKey: holderKey, addrs: [`/ip4/127.0.0.1/tcp/${o1.p2pPort}`] }],
        dialIntervalMs: 200,
      },
      { logger: nullLogger() },
    )
    await client.start()
    t.teardown(() => client.stop())
    await waitFor('connected to the custodian', 20_000, () => client.peers().some((p) => equalBytes(p.publicKey, holderKey)), 100)

    // The raw fetch: the lease envelope, the chunk list, every chunk with a signed claim stamped with the chain head.
    const sign = (msg: Uint8Array): Uint8Array => keys.signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, msg))
    const claimAt = async (): Promise<{ time: number; height: number }> => {
      const st = await c1.status()
      return { time: st.headTime, height: st.height }
    }
    const envelope = await client.request(CHUNK_PROTOCOLS.object, holderKey, encodeObjectRequest(fromHex(sid), fromHex(lease?.envelope ?? '')), {
      maxResponseBytes: 16 * 1024 * 1024,
      timeoutMs: 10_000,
    })
    t.equal(toHex(sha256(envelope)), lease?.envelope, 'the lease envelope')
    const list = decodeList(
      await client.request(CHUNK_PROTOCOLS.list, holderKey, encodeStudyRequest(fromHex(sid)), {
        maxResponseBytes: listResponseBytes(study.chunkCount),
        timeoutMs: 10_000,
      }),
      study.chunkCount,
    )
    let bytes = 0
    for (const [i, id] of list.entries()) {
      const head = await claimAt()
      const chunk = await client.pipeRequest(
        CHUNK_PROTOCOLS.get,
        holderKey,
        encodeLeaseChunkRequest(fromHex(sid), i, { leaseId: fromHex(leaseId), ...head, holder: holderKey }, sign),
        { maxResponseBytes: study.chunkSize + 64, timeoutMs: 10_000 },
      )
      if (!equalBytes(sha256(chunk), id)) throw new Error(`chunk ${i} does not match its id`)
      bytes += chunk.length
    }
    t.pass(`the lessee's own client got the envelope and all ${study.chunkCount} chunks (${bytes} bytes)`)

    // The lease ends in chain time; the holder's summary goes on the ledger (at the latest when the lease ends).
    await waitFor("the holder's served record on the ledger", LEASE_MS + 30_000, async () => (await c1.audit(sid)).some((e) => e.type === 'access.served'), 500)
    const served = (await c1.audit(sid)).filter((e) => e.type === 'access.served')
    t.same(
      served.map((e) => [e.by, e.leaseId, e.detail.chunks, e.detail.bytes, e.detail.envelope]),
      [['org1', leaseId, study.chunkCount, bytes, true]],
      'by the holder, under the lease: every chunk, its bytes and the envelope',
    )
    t.ok(
      Number(served[0]?.detail.first) >= (lease?.grantedAt ?? Infinity) && Number(served[0]?.detail.last) < (lease?.expiry ?? 0),
      'a window inside the lease',
    )
    t.same(
      (await c1.audit(sid)).filter((e) => e.type === 'access.record'),
      [],
      "no access record: the lessee's node sent none",
    )
    const text = await cli(o1, ['audit', sid])
    t.equal(text.code, 0, text.stderr)
    t.match(text.stdout, new RegExp(`served ${study.chunkCount} chunks \\(${bytes} bytes\\) \\+ key envelope, \\S+\\s+by org1`), 'the audit command lists it')

    // After the end: a claim backdated into the lease but naming the current head block is refused and reported.
    await waitFor('the lease expired', 30_000, async () => (await c1.leases('incoming')).some((l) => l.leaseId === leaseId && l.status === 'expired'), 250)
    const now = await claimAt()
    const backdated = { leaseId: fromHex(leaseId), time: (lease?.grantedAt ?? 0) + 1, height: now.height, holder: holderKey }
    const refused = await client
      .pipeRequest(CHUNK_PROTOCOLS.get, holderKey, encodeLeaseChunkRequest(fromHex(sid), 0, backdated, sign), {
        maxResponseBytes: study.chunkSize + 64,
        timeoutMs: 10_000,
      })
      .then(
        () => 'served',
        (err: unknown) => (isP2PError(err, 'P2P_REMOTE_ERROR') ? err.remoteCode : String(err)),
      )
    t.equal(refused, 'SWARM_LEASE_ENDED', 'refused: the lease has ended')
    await waitFor('the violation on the ledger', 20_000, async () => (await c1.audit(sid)).some((e) => e.type === 'violation.report'), 250)
    const v = (await c1.audit(sid)).find((e) => e.type === 'violation.report')
    t.same(
      [v?.by, v?.detail.requester, v?.detail.time, v?.detail.height],
      ['org1', lesseeOrg.id, backdated.time, now.height],
      'the signed, backdated claim is the evidence',
    )
  },
)
