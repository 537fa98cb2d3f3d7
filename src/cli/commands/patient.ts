import type { Command } from 'commander'
import { resolve } from 'node:path'
import { KeystoreError, SCRYPT_PARAMS, encodePatientPublicKey, generatePatientKeys, patientKeyId, readPassphrase, saveKeystore } from '../../crypto/index.js'
import { exists, writeFileAtomic } from '../../util/index.js'
import { action } from '../main.js'
import { print } from '../output.js'

/** patient keygen. */
export function registerPatientCommands(program: Command): void {
  const patient = program.command('patient').description('patient keys: a patient who owns studies')
  patient.command('keygen')
    .description('create a patient key pair: <out> (encrypted secret, mode 0600) and <out>.pub (public key, to give to `study add --patient`)')
    .requiredOption('--out <file>', 'key file to create')
    .option('--passphrase-file <file>', 'file holding the passphrase (else RADCHAIN_PASSPHRASE)')
    .option('--json', 'machine-readable output')
    .action(action(async (o: { out: string; passphraseFile?: string; json?: boolean }) => {
      const out = resolve(o.out)
      const pubPath = `${out}.pub`
      for (const p of [out, pubPath]) if (await exists(p)) throw new KeystoreError('KEYSTORE_EXISTS', `${p} already exists: nothing was overwritten`)
      const passphrase = await readPassphrase(o.passphraseFile)
      const { secret, publicKey } = generatePatientKeys()
      const text = encodePatientPublicKey(publicKey)
      try {
        await saveKeystore(out, secret, passphrase, SCRYPT_PARAMS)
      } finally {
        secret.fill(0)
      }
      await writeFileAtomic(pubPath, text + '\n', 0o644)
      const id = patientKeyId(publicKey)
      print(o.json === true, { keyFile: out, publicKeyFile: pubPath, owner: id, publicKey: text },
        `patient key ${id}\n  secret  ${out} (encrypted; keep it safe, it cannot be recovered)\n  public  ${pubPath} (give this to the organization: radchain study add --patient ${pubPath} ...)`)
    }))
}
