export * from './hash.js'
export * from './ed25519.js'
export * from './x25519.js'
export * from './keystore.js'
