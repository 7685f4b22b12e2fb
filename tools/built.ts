/**
 * The compiled build the tools measure and break (`node dist/server.js`, what `npm start` runs):
 * built first when its sources changed, once per process. `npm ci` builds it already, so this
 * is usually a stat of each source.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

let built: Promise<void> | null = null;
export function ensureBuilt(): Promise<void> {
  built ??= new Promise((resolve, reject) => {
    const build = spawn(process.execPath, ['scripts/build.mjs', '--if-stale'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    build.stderr.on('data', (b: Buffer) => (err += b));
    build.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`npm run build failed (${code}): ${err.slice(-2000)}`))));
  });
  return built;
}
