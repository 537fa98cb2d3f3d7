// Patient links (src/node/patient-links.ts): a Patient ID and issuer of this
// organization mapped to a patient key, encrypted at rest, checked as DICOM
// LO values, replaced only when asked, read back after a restart.
import t, { type Test } from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodePatientPublicKey, generateOrgKeys, generatePatientKeys, type OrgKeys } from '../../../src/crypto/index.js'
import { ChainStore } from '../../../src/storage/index.js'
import { PatientLinks } from '../../../src/node/patient-links.js'

const ID = 'MRN-00417-ÄÖ'
const ISSUER = 'ST.MARY^HOSP'
const keyText = (): string => encodePatientPublicKey(generatePatientKeys().publicKey)

/** A database in a temporary dir, closed and removed in teardown; `reopen` closes and opens it again. */
async function fixture(t: Test): Promise<{ db: () => ChainStore; reopen: () => Promise<ChainStore>; keys: OrgKeys }> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-links-'))
  let db = await ChainStore.open(join(dir, 'db'))
  t.teardown(async () => {
    await db.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })
  return {
    db: () => db,
    reopen: async () => {
      await db.close()
      db = await ChainStore.open(join(dir, 'db'))
      return db
    },
    keys: generateOrgKeys().keys,
  }
}

/** Every key and value of the key space, as text (values as latin1, base64 and hex: however a value might show). */
async function raw(db: ChainStore): Promise<string> {
  const out: string[] = []
  for await (const [k, v] of db.keyspace('p').entries()) {
    const b = Buffer.from(v)
    out.push(k, b.toString('latin1'), b.toString('utf8'), b.toString('base64'), b.toString('base64url'), b.toString('hex'))
  }
  return out.join('\n')
}

t.test('a link is found by its Patient ID and issuer; the database holds neither, nor the key', async (t) => {
  const f = await fixture(t)
  const links = await PatientLinks.open({ keys: f.keys, kv: f.db().keyspace('p') })
  const key = keyText()
  const r = await links.link(ID, ISSUER, key, { replace: false })
  t.equal(r.replaced, false)
  t.equal(r.link.patientId, ID)
  t.equal(r.link.issuer, ISSUER)
  t.equal(r.link.patientKey, key)
  t.match(r.link.keyId, /^[0-9a-f]{64}$/)
  t.equal(links.ownerFor(ID, ISSUER), key)
  t.equal(links.ownerFor(` ${ID}  `, `${ISSUER} `), key, 'spaces around an LO value do not count (PS3.5 6.2)')
  t.equal(links.ownerFor(ID, ''), undefined, 'the issuer must match: none is not this one')
  t.equal(links.ownerFor(ID, 'OTHER'), undefined, 'nor is another')
  t.equal(links.ownerFor(ID.toLowerCase(), ISSUER), undefined, 'a Patient ID is compared as is, case included')
  await links.link(ID, '', keyText(), { replace: false })
  t.not(links.ownerFor(ID, ''), key, 'the same Patient ID without an issuer is another link')

  const stored = await raw(f.db())
  const body = key.slice('rcpatient1:'.length)
  for (const [what, v] of [
    ['Patient ID', ID],
    ['Patient ID (ASCII part)', 'MRN-00417'],
    ['issuer', ISSUER],
    ['patient key text', body.slice(0, 40)],
    ['patient key bytes', Buffer.from(body, 'base64url').subarray(0, 32).toString('hex')],
  ] as const)
    t.notOk(stored.includes(v), `the database holds no ${what}`)
  const names: string[] = []
  const sizes = new Set<number>()
  for await (const [k, v] of f.db().keyspace('p').entries()) {
    names.push(k)
    sizes.add(v.length)
  }
  t.equal(names.length, 2)
  t.ok(
    names.every((n) => /^l\/[0-9a-f]{64}$/.test(n)),
    'records are named by an HMAC',
  )
  t.equal(sizes.size, 1, 'every record has one size, whatever the lengths of its values')
})

t.test('values are checked as DICOM LO values, and the key as a patient key; the messages never repeat the value', async (t) => {
  const f = await fixture(t)
  const links = await PatientLinks.open({ keys: f.keys, kv: f.db().keyspace('p') })
  const key = keyText()
  const badIds = ['', '   ', 'x'.repeat(65), 'A\\B', 'A\nB', 'A\u0000B', 'A\u0085B']
  for (const id of badIds)
    await t.rejects(links.link(id, '', key, { replace: false }), { name: 'PatientLinkError', code: 'PATIENT_LINK_BAD_ID' }, JSON.stringify(id))
  for (const issuer of ['y'.repeat(65), 'I\\J', 'I\tJ'])
    await t.rejects(links.link('OK-ID', issuer, key, { replace: false }), { name: 'PatientLinkError', code: 'PATIENT_LINK_BAD_ISSUER' }, JSON.stringify(issuer))
  const err = (await links.link('SECRET-ID\\x', '', key, { replace: false }).catch((e: unknown) => e)) as Error
  t.notMatch(err.message, 'SECRET-ID', 'the message names the field, not the value')
  t.match(err.message, /Patient ID/)
  await t.rejects(links.link('OK-ID', '', 'rcpatient1:AAAA', { replace: false }), { name: 'PatientKeyError', code: 'PATIENT_BAD_KEY' })
  await t.rejects(links.link('OK-ID', '', key.slice(0, -2), { replace: false }), { code: 'PATIENT_BAD_KEY' })
  await t.rejects(links.unlink('', ''), { code: 'PATIENT_LINK_BAD_ID' })
  t.same(links.list(), [], 'nothing refused was linked')
  const long = 'é'.repeat(64)
  await links.link(long, 'ü'.repeat(64), key, { replace: false })
  t.equal(links.ownerFor(long, 'ü'.repeat(64)), key, '64 characters (not bytes) is the bound')
  const r = await links.link('  PADDED  ', '', ` ${key}\n`, { replace: false })
  t.same([r.link.patientId, r.link.patientKey], ['PADDED', key], 'kept without the spaces around it, the key in its one text form')
})

t.test('another key for a linked Patient ID is refused unless replace; the same key again changes nothing', async (t) => {
  const f = await fixture(t)
  const links = await PatientLinks.open({ keys: f.keys, kv: f.db().keyspace('p') })
  const [a, b] = [keyText(), keyText()]
  const first = await links.link(ID, ISSUER, a, { replace: false })
  const again = await links.link(ID, ISSUER, a, { replace: false })
  t.same(again, first, 'the same key: the same link, its time kept, not replaced')
  await t.rejects(links.link(ID, ISSUER, b, { replace: false }), { name: 'PatientLinkError', code: 'PATIENT_LINK_EXISTS' })
  t.equal(links.ownerFor(ID, ISSUER), a, 'refused: the link stays')
  const r = await links.link(ID, ISSUER, b, { replace: true })
  t.equal(r.replaced, true)
  t.equal(links.ownerFor(ID, ISSUER), b, 'replaced')
  t.equal(links.list().length, 1)
  // Two links of one Patient ID at once: one is made, the other refused (the check and the write are not interleaved).
  const [c, d] = [keyText(), keyText()]
  const both = await Promise.allSettled([links.link('RACE', '', c, { replace: false }), links.link('RACE', '', d, { replace: false })])
  t.same(
    both.map((x) => x.status),
    ['fulfilled', 'rejected'],
  )
  t.equal(links.ownerFor('RACE', ''), c)
})

t.test('unlink removes a link, and refuses one that is not there', async (t) => {
  const f = await fixture(t)
  const links = await PatientLinks.open({ keys: f.keys, kv: f.db().keyspace('p') })
  await links.link(ID, ISSUER, keyText(), { replace: false })
  await links.link('B-ID', '', keyText(), { replace: false })
  await t.rejects(links.unlink(ID, ''), { name: 'PatientLinkError', code: 'PATIENT_LINK_UNKNOWN' }, 'the issuer must match')
  await links.unlink(` ${ID}`, ISSUER)
  t.equal(links.ownerFor(ID, ISSUER), undefined)
  t.same(
    links.list().map((l) => l.patientId),
    ['B-ID'],
  )
  await t.rejects(links.unlink(ID, ISSUER), { code: 'PATIENT_LINK_UNKNOWN' }, 'twice: unknown')
  const names: string[] = []
  for await (const [k] of f.db().keyspace('p').entries()) names.push(k)
  t.equal(names.length, 1, 'its record is gone from the database')
})

t.test('after a restart the links are read back; under other organization keys they do not open', async (t) => {
  const f = await fixture(t)
  let links = await PatientLinks.open({ keys: f.keys, kv: f.db().keyspace('p') })
  const [a, b] = [keyText(), keyText()]
  await links.link(ID, ISSUER, a, { replace: false })
  await links.link('A-FIRST', '', b, { replace: false })
  await links.link('GONE', '', b, { replace: false })
  await links.unlink('GONE', '')
  const before = links.list()
  const db = await f.reopen()
  links = await PatientLinks.open({ keys: f.keys, kv: db.keyspace('p') })
  t.same(links.list(), before, 'the same links, in order (by Patient ID)')
  t.same(
    before.map((l) => l.patientId),
    ['A-FIRST', ID],
  )
  t.equal(links.ownerFor(ID, ISSUER), a)
  t.equal(links.ownerFor('GONE', ''), undefined, 'an unlinked one stays unlinked')
  await t.rejects(PatientLinks.open({ keys: generateOrgKeys().keys, kv: db.keyspace('p') }), { name: 'StoreError', code: 'STORE_CORRUPT' })
  // A record copied under another record's name does not open either (each is bound to its name).
  const kv = db.keyspace('p')
  const entries: [string, Uint8Array][] = []
  for await (const e of kv.entries()) entries.push(e)
  await kv.put((entries[0] as [string, Uint8Array])[0], (entries[1] as [string, Uint8Array])[1])
  await t.rejects(PatientLinks.open({ keys: f.keys, kv }), { name: 'StoreError', code: 'STORE_CORRUPT' })
})
