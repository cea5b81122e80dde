// Builds the image the Dockerfile describes without a Docker engine: each
// stage gets a directory standing in for its root filesystem, and FROM,
// WORKDIR, COPY, RUN, ENV, USER, ENTRYPOINT and CMD are carried out on it with
// this machine's Node 20 (the base image's). What it cannot carry out, it
// refuses, so a Dockerfile change the emulation does not understand fails the
// test instead of passing it unchecked.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join, posix } from 'node:path';

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Instructions in order, continuation lines joined; comments and parser directives dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending === '') startLine = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const whole = pending + line;
    pending = '';
    const match = /^(\S+)\s+(.*)$/.exec(whole);
    if (!match) throw new Error(`Dockerfile line ${startLine}: cannot parse "${whole}"`);
    instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: startLine });
  });
  return instructions;
}

export interface Image {
  /** The final stage's root filesystem. */
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: { uid: number; gid: number } | undefined;
  /** ENTRYPOINT followed by CMD, paths as in the image. */
  argv: string[];
}

interface Stage {
  name: string | undefined;
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: { uid: number; gid: number } | undefined;
  entrypoint: string[];
  cmd: string[];
}

function execForm(args: string, where: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) {
    throw new Error(`${where}: only the exec form (a JSON array of strings) is emulated`);
  }
  return parsed;
}

/**
 * Carries out `dockerfile` with `context` as the build context; stage roots
 * go under `out`. The base image is taken to be Node 20 on Debian, i.e. this
 * machine's node and npm.
 */
export function buildImage(dockerfile: string, context: string, out: string): Image {
  const stages: Stage[] = [];
  let stage: Stage | undefined;
  const at = (i: Instruction) => `Dockerfile line ${i.line} (${i.keyword})`;
  for (const i of parseDockerfile(readFileSync(dockerfile, 'utf8'))) {
    if (i.keyword === 'FROM') {
      const [image, as, name] = i.args.split(/\s+/);
      if (!image?.startsWith('node:20')) throw new Error(`${at(i)}: only node:20 base images are emulated`);
      const root = join(out, `stage-${stages.length}`);
      mkdirSync(root, { recursive: true });
      stage = {
        name: as?.toUpperCase() === 'AS' ? name : undefined,
        root,
        workdir: '/',
        env: {},
        user: undefined,
        entrypoint: [],
        cmd: [],
      };
      stages.push(stage);
      continue;
    }
    if (!stage) throw new Error(`${at(i)}: before any FROM`);
    const inRoot = (path: string) => join(stage!.root, posix.resolve(stage!.workdir, path));
    switch (i.keyword) {
      case 'WORKDIR':
        stage.workdir = posix.resolve(stage.workdir, i.args);
        mkdirSync(inRoot('.'), { recursive: true });
        break;
      case 'ENV': {
        const match = /^([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/.exec(i.args);
        if (!match) throw new Error(`${at(i)}: only ENV KEY=value is emulated`);
        stage.env[match[1]!] = match[2]!;
        break;
      }
      case 'USER': {
        const match = /^(\d+)(?::(\d+))?$/.exec(i.args);
        if (!match) throw new Error(`${at(i)}: only a numeric USER uid[:gid] is emulated`);
        stage.user = { uid: Number(match[1]), gid: Number(match[2] ?? match[1]) };
        break;
      }
      case 'COPY': {
        const words = i.args.split(/\s+/);
        let from = context;
        if (words[0]?.startsWith('--from=')) {
          const source = stages.find((s) => s.name === words[0]!.slice('--from='.length));
          if (!source) throw new Error(`${at(i)}: no stage named ${words[0]}`);
          from = source.root;
          words.shift();
        }
        if (words.some((w) => w.startsWith('--'))) throw new Error(`${at(i)}: COPY flags are not emulated`);
        const dest = words.pop()!;
        for (const src of words) {
          if (/[*?[]/.test(src)) throw new Error(`${at(i)}: COPY wildcards are not emulated`);
          const source = join(from, src);
          if (!existsSync(source)) throw new Error(`${at(i)}: ${src} does not exist`);
          // "COPY a b ./" puts a and b into the directory; "COPY dir ./dir" copies the directory's contents.
          const target = dest.endsWith('/') ? join(inRoot(dest), basename(src)) : inRoot(dest);
          cpSync(source, target, { recursive: true });
        }
        break;
      }
      case 'RUN':
        if (i.args.startsWith('[')) throw new Error(`${at(i)}: only the shell form of RUN is emulated`);
        execFileSync('sh', ['-c', i.args], {
          cwd: inRoot('.'),
          env: { ...process.env, ...stage.env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        break;
      case 'ENTRYPOINT':
        stage.entrypoint = execForm(i.args, at(i));
        stage.cmd = [];
        break;
      case 'CMD':
        stage.cmd = execForm(i.args, at(i));
        break;
      default:
        throw new Error(`${at(i)}: not emulated`);
    }
  }
  if (!stage) throw new Error('the Dockerfile has no FROM');
  return {
    root: stage.root,
    workdir: stage.workdir,
    env: stage.env,
    user: stage.user,
    argv: [...stage.entrypoint, ...stage.cmd],
  };
}
