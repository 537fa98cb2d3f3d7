import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { consentTx, signTx } from '../src/chain/index.js'
import { PatientStudyKeys, encodePatientPublicKey, generatePatientKeys } from '../src/crypto/index.js'
import { generateCtStudy } from '../src/study/index.js'
import { fromHex, sleep, toHex } from '../src/util/index.js'
import { clientOf, devnetDown, devnetUp, waitJob, type DevnetOrg } from '../src/devnet/index.js'

/** Result of {@link measureLease}. */
export interface LeaseBenchResult {
  /** Ledger bytes of each transaction, signature included. */
  readonly bytes: { readonly request: number; readonly grant: number; readonly access: number; readonly consent: number; readonly register: number }
  /** Study size (ciphertext bytes). */
  readonly studyBytes: number
  /** From submitting the lease request to the study's files written at the lessee, and its parts. */
  readonly seconds: { readonly total: number; readonly toGrant: number; readonly fetchAndWrite: number }
}

/**
 * On a 4-organization devnet, org1 adds a synthetic CT study of `slices`
 * slices (512 x 512) for a patient who already consented to images for any
 * organization; the organization that does not hold the study requests a
 * lease, org1's node grants it on its own, and the lessee fetches the study
 * from the holders and writes its files. Reports the ledger size of each
 * transaction and the time from request to files.
 */
export async function measureLease(opts: { slices: number; basePort: number; log: (s: string) => void }): Promise<LeaseBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-lease-'))
  try {
    await generateCtStudy({ slices: opts.slices, rows: 512, cols: 512, out: join(dir, 'input'), seed: 5 })
    const m = await devnetUp({
      dir: join(dir, 'net'),
      orgs: 4,
      basePort: opts.basePort,
      blockIntervalMs: 500,
      // DICOMweb's own fetch of a leased study is not what is measured: `study get` is.
      config: { logLevel: 'warn', swarm: { durableTimeoutMs: 300_000 }, dicomweb: { showLeased: false } },
    })
    try {
      const o1 = m.orgs[0] as DevnetOrg
      const c1 = await clientOf(o1)
      const patient = generatePatientKeys()
      const job = await waitJob(c1, await c1.addStudies([join(dir, 'input')], { patient: encodePatientPublicKey(patient.publicKey) }), 'add')
      const study = job.studies[0]
      if (study === undefined) throw new Error('no study')
      const lessee = m.orgs.find((o) => !study.holders.includes(o.id)) as DevnetOrg
      const cl = await clientOf(lessee)
      const st = await cl.status()
      const view = await cl.study(study.studyId)
      const signer = new PatientStudyKeys(patient.keys).signerFor(fromHex(study.studyId), fromHex(view.owner ?? ''), fromHex(view.ownerEphemeral ?? ''))
      if (signer === null) throw new Error("the study is not the patient's")
      const consent = signTx(signer, {
        chainId: st.chainId,
        type: consentTx.name,
        nonce: await cl.nonce(toHex(signer.publicKey)),
        payload: {
          studyId: fromHex(study.studyId),
          anyOrg: true,
          orgs: [],
          purposes: [],
          scopes: ['images' as const],
          maxDurationMs: 30 * 86_400_000,
          researchPool: false,
        },
      })
      await cl.tx(await cl.submitTx(consent.bytes), 30_000)
      opts.log(`  study of ${(study.size / 1e6).toFixed(0)} MB held by ${study.holders.join(', ')}; ${lessee.id} requests a lease`)
      const t0 = performance.now()
      const leaseId = await cl.requestLease(study.studyId, { scope: 'images', durationMs: 3_600_000, purpose: 'second opinion' })
      let grantAt = 0
      for (;;) {
        const l = (await cl.leases('outgoing')).find((x) => x.leaseId === leaseId)
        if (l?.status === 'granted') {
          grantAt = performance.now()
          break
        }
        await sleep(20)
      }
      await waitJob(cl, await cl.getStudy(study.studyId, { out: join(dir, 'out') }), 'get', 20)
      const t1 = performance.now()
      // Sizes of the transactions, as the blocks carry them.
      const size: Record<string, number> = {}
      let accessSeen = 0
      for (let i = 0; i < 100 && accessSeen < 2; i++) {
        const head = (await cl.status()).height
        accessSeen = 0
        for (let h = 1; h <= head; h++) {
          for (const tx of (await cl.block(String(h))).txs as { type: string; size: number; payload: { leaseId?: string } }[]) {
            size[tx.type] = Math.max(size[tx.type] ?? 0, tx.size)
            if (tx.type === 'access.record' && tx.payload.leaseId === leaseId) accessSeen++
          }
        }
        if (accessSeen < 2) await sleep(300)
      }
      return {
        bytes: {
          request: size['lease.request'] ?? 0,
          grant: size['lease.grant'] ?? 0,
          access: size['access.record'] ?? 0,
          consent: size['consent.set'] ?? 0,
          register: size['study.register'] ?? 0,
        },
        studyBytes: study.size,
        seconds: { total: (t1 - t0) / 1000, toGrant: (grantAt - t0) / 1000, fetchAndWrite: (t1 - grantAt) / 1000 },
      }
    } finally {
      await devnetDown(join(dir, 'net'), true).catch(() => 0)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
