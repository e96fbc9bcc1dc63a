#!/usr/bin/env node
// Entry point of the `warden` command: runs the compiled CLI (npm run build writes dist/).
import { existsSync } from "node:fs";

const cli = new URL("../dist/cli/index.js", import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write("warden: dist/ is missing; run `npm run build` in the warden folder first\n");
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
