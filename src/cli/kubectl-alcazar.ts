#!/usr/bin/env node
// kubectl-alcazar: the kubectl plugin (`kubectl alcazar status`, `kubectl alcazar inspect …`).
// kubectl finds it on PATH by its name; `npm i -g` puts it there from package.json's bin.
import { runPlugin } from './plugin/dispatch.js';

runPlugin(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  },
);
