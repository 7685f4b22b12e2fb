#!/usr/bin/env node
/**
 * Builds dist/, what `npm start` runs: compiles src/ with tsc (tsconfig.build.json), then copies
 * what the server reads from beside its own modules at run time — the engine's Lua scripts, the
 * ledger's SQL migrations and the web pages, whose scripts and style sheets are minified here
 * (TypeScript and esbuild are dev dependencies: a production install has neither). It builds into
 * a clean dist.next/ and renames that to dist/ when all went well, so a type error leaves the
 * last good dist/ in place (and still stale: `npm start` refuses it until the build passes).
 *
 *   node scripts/build.mjs                  build (`npm run build`)
 *   node scripts/build.mjs --if-stale       build only when dist/ is missing or older than its
 *                                           sources (`prestart`: a stat of each source, ~ms)
 *   node scripts/build.mjs --if-possible    and skip, saying so, when TypeScript is not installed,
 *                                           and do not fail on a type error (`prepare`: neither
 *                                           `npm ci --omit=dev` nor an install mid-edit fails)
 *
 * dist/.build-stamp is written last and holds a hash of the sources: dist/ is fresh when no
 * source is newer than the stamp or, failing that (a checkout or a copy touched the files), when
 * the sources still hash the same.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');
const next = join(root, 'dist.next');
const stamp = join(dist, '.build-stamp');
const require = createRequire(import.meta.url);

/** What the server loads at run time from beside its modules (src-relative), and how it is copied. */
const ASSETS = [{ dir: 'engine/redis/lua' }, { dir: 'ledger/migrations', only: /\.sql$/ }, { dir: 'web/public', minify: true }];
/** Besides src/, what changes the output. */
const INPUTS = ['tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs'];

const args = new Set(process.argv.slice(2));
const say = (line) => process.stderr.write(`build: ${line}\n`);

/** Every file and folder under `dir`, sorted (folders too: a deleted file changes its folder's mtime). */
function walk(dir, out = []) {
  out.push(dir);
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, e.name);
    if (e.isDirectory()) walk(path, out);
    else out.push(path);
  }
  return out;
}

function sources() {
  return [...walk(src), ...INPUTS.map((f) => join(root, f))];
}

/** Modification time, or Infinity for a file that went away since it was listed (an editor's swap file). */
function mtimeOf(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Infinity;
  }
}

function hashOf(paths) {
  const h = createHash('sha256');
  for (const p of paths) {
    let body;
    try {
      body = statSync(p).isFile() ? readFileSync(p) : null;
    } catch {
      continue;
    }
    h.update(relative(root, p)).update('\0');
    if (body) h.update(body).update('\0');
  }
  return h.digest('hex');
}

/** Whether dist/ was built from the sources as they are now. */
function fresh() {
  if (!existsSync(stamp) || !existsSync(join(dist, 'server.js'))) return false;
  if (!existsSync(src)) return true; // an image with dist/ and no sources: nothing to rebuild from
  const built = statSync(stamp).mtimeMs;
  const paths = sources();
  if (paths.every((p) => mtimeOf(p) <= built)) return true;
  if (readFileSync(stamp, 'utf8').trim() !== hashOf(paths)) return false;
  const now = new Date();
  utimesSync(stamp, now, now); // same content, newer files: take the fast path next time
  return true;
}

function resolves(name) {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

async function build() {
  const started = performance.now();
  const startedAt = new Date();
  const hash = hashOf(sources());
  rmSync(next, { recursive: true, force: true });

  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', next], {
    cwd: root,
    stdio: 'inherit',
  });
  if (tsc.status !== 0) {
    rmSync(next, { recursive: true, force: true });
    say(`tsc failed: dist/ not ${existsSync(dist) ? 'updated' : 'built'}`);
    // An install is not the place to fail on a type error: `npm start` builds again, and stops there.
    process.exit(args.has('--if-possible') ? 0 : (tsc.status ?? 1));
  }

  // The same transform web-routes.ts applies when esbuild is at hand, so the hashed names agree.
  const esbuild = await import('esbuild');
  let minified = 0;
  for (const { dir, only, minify } of ASSETS) {
    const from = join(src, dir);
    const to = join(next, dir);
    for (const file of walk(from)) {
      if (!statSync(file).isFile() || (only && !only.test(file))) continue;
      const target = join(to, relative(from, file));
      mkdirSync(dirname(target), { recursive: true });
      const ext = extname(file);
      if (minify && (ext === '.js' || ext === '.css')) {
        const { code } = await esbuild.transform(readFileSync(file, 'utf8'), { loader: ext.slice(1), minify: true, target: 'es2020', legalComments: 'none' });
        writeFileSync(target, code);
        minified++;
      } else {
        cpSync(file, target, { preserveTimestamps: true });
      }
    }
  }

  // A file tsc does not compile and no entry above copies would be missing from dist/.
  const copied = (rel) => ASSETS.some(({ dir, only }) => rel.startsWith(`${dir}/`) && (!only || only.test(rel)));
  for (const file of walk(src)) {
    const rel = relative(src, file).split('\\').join('/');
    if (statSync(file).isFile() && !rel.endsWith('.ts') && !copied(rel))
      say(`warning: src/${rel} is not copied to dist/ (add it to ASSETS in scripts/build.mjs if the server reads it)`);
  }

  // Dated when the sources were read: one edited during the build is newer, and gets hashed.
  writeFileSync(join(next, '.build-stamp'), `${hash}\n`);
  utimesSync(join(next, '.build-stamp'), startedAt, startedAt);
  rmSync(dist, { recursive: true, force: true });
  renameSync(next, dist);
  say(`dist/ built in ${((performance.now() - started) / 1000).toFixed(1)} s (${minified} scripts and style sheets minified)`);
}

if (args.has('--if-stale') && fresh()) process.exit(0);
if (!resolves('typescript/bin/tsc') || !resolves('esbuild')) {
  if (args.has('--if-possible')) {
    say('TypeScript is not installed (a production install?): not building. Build where dev dependencies are installed: npm run build');
    process.exit(0);
  }
  const why = !args.has('--if-stale') ? '' : existsSync(stamp) ? 'dist/ is older than src/, and ' : 'there is no dist/, and ';
  say(`${why}TypeScript is not installed to build it: run \`npm install\` (with dev dependencies), then \`npm run build\``);
  process.exit(1);
}
if (args.has('--if-stale')) say(existsSync(stamp) ? 'src/ changed since the last build: rebuilding dist/' : 'no dist/ yet: building it');
await build();
