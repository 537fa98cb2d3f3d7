#!/usr/bin/env node
import '../src/util/polyfill.js'
import { main } from '../src/cli/main.js'
import { guardCommand } from '../src/cli/exit.js'

guardCommand(main(process.argv))
