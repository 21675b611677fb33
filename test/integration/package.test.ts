// `npm pack` gives a package whose `herald` bin runs from anywhere: packed (scripts off: dist/ is
// already built by pretest), unpacked in a temp dir with the repository's node_modules beside it (no
// network), its bin prints the version from another folder and starts Herald on a config elsewhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../support/herald.js';
import { freePort } from '../support/process.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const run = (cmd: string, args: string[], cwd: string) =>
  new Promise<string>((resolve, reject) => execFile(cmd, args, { cwd, timeout: 60_000 }, (e, out, err) => (e ? reject(new Error(`${cmd} ${args.join(' ')}: ${e.message}\n${err}`)) : resolve(out))));

test('npm pack: the herald bin runs from anywhere', { timeout: 120_000 }, async () => {
  const dest = tempDir();
  const out = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dest], ROOT);
  const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  const files = info!.files.map((f) => f.path);
  assert.ok(files.includes('dist/src/cli.js') && files.includes('config.toml') && files.includes('docs/admin-api.md'), files.join(' '));
  assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('src/')), 'no tests or sources in the package');
  await run('tar', ['xzf', join(dest, info!.filename)], dest);
  const pkg = join(dest, 'package');
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  const bin = join(pkg, 'dist', 'src', 'cli.js');
  const elsewhere = tempDir();
  assert.match(await run(process.execPath, [bin, '--version'], elsewhere), /^\d+\.\d+\.\d+\n$/);

  const port = await freePort();
  const cfg = join(tempDir(), 'herald.toml');
  writeFileSync(cfg, `[sip]\nlisten = ["udp:127.0.0.1:${port}"]\n[xcap]\nlisten = "127.0.0.1:0"\n[admin]\nlisten = "127.0.0.1:0"\n[store]\nurl = "sqlite://state/herald.sqlite"\n[log]\nformat = "json"\n`);
  const child = spawn(process.execPath, [bin, '--config', cfg], { cwd: elsewhere, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no start line: ${output}`)), 20_000);
      child.stdout.on('data', () => {
        if (output.includes('Herald listening')) {
          clearTimeout(t);
          resolve();
        }
      });
      child.once('exit', (c) => reject(new Error(`exited ${c}: ${output}`)));
    });
    // The store went next to the config file, not into the working directory.
    assert.ok(existsSync(join(cfg, '..', 'state', 'herald.sqlite')));
    assert.deepEqual(readdirSync(elsewhere), []);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});
