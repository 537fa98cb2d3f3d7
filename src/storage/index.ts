export * from './chain-store.js'
export * from './chunk-store.js'
export * from './study-index.js'
