#!/usr/bin/env node
// forge expects a native solc; this shim speaks its CLI (--version, --standard-json) via solcjs.
'use strict';
const path = require('path');
const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));
const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8');
  const fs = require('fs');
  // forge passes --allow-paths/--base-path; imports are resolved from the filesystem here.
  const findImports = (p) => {
    for (const base of [process.cwd(), '/']) {
      const full = path.resolve(base, p);
      if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') };
    }
    return { error: `File not found: ${p}` };
  };
  process.stdout.write(solc.compile(input, { import: findImports }));
});
