#!/usr/bin/env node
import '../src/util/polyfill.js'
import { main } from '../src/cli/main.js'

await main(process.argv)
