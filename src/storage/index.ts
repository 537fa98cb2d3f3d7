export * from './chain-store.js'
export * from './chunk-store.js'
