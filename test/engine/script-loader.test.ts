/** The engine's script table: files, key counts and refusal codes cannot drift from the TypeScript side. */
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { Refusal } from '../../src/engine/engine-refusals.js';
import { loadScripts, luaRefusals } from '../../src/engine/redis/script-loader.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

function scriptsDir(files: Record<string, string>): URL {
  const dir = mkdtempSync(join(tmpdir(), 'stampede-lua-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'includes'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return pathToFileURL(`${dir}/`);
}

it('refuses a script whose key count differs from the table, one not in it, and a missing one', () => {
  expect(() => loadScripts(scriptsDir({ 'reserve-3.lua': 'return 1' }), { reserve: 10 })).toThrow(/reserve-3\.lua takes 3 keys; the script table says 10/);
  expect(() => loadScripts(scriptsDir({ 'reserve-10.lua': 'return 1', 'stray-1.lua': 'return 1' }), { reserve: 10 })).toThrow(
    /stray-1\.lua is not in the script table/,
  );
  expect(() => loadScripts(scriptsDir({ 'reserve-10.lua': 'return 1' }), { reserve: 10, admit: 5 })).toThrow(/missing: admit/);
});

it('versions a script by its content, includes and generated fragments inlined', () => {
  const a = loadScripts(
    scriptsDir({ 'x-1.lua': '--- @include "includes/refusals"\nreturn REFUSAL.SOLD_OUT' }),
    { x: 1 },
    { 'includes/refusals': luaRefusals(Refusal) },
  ).get('x')!;
  const b = loadScripts(
    scriptsDir({ 'x-1.lua': '--- @include "includes/refusals"\nreturn REFUSAL.SOLD_OUT' }),
    { x: 1 },
    { 'includes/refusals': luaRefusals({ ...Refusal, SOLD_OUT: -99 }) },
  ).get('x')!;
  expect(a.lua).toContain('SOLD_OUT = -11,');
  expect(a.version).toMatch(/^[0-9a-f]{10}$/);
  expect(b.version).not.toBe(a.version);
});

it('every refusal the real scripts return is a code of the TypeScript table, and none is a bare number', () => {
  const dir = new URL('../../src/engine/redis/lua/', import.meta.url);
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.lua'))) {
    const text = readFileSync(new URL(file, dir), 'utf8');
    expect(text, file).not.toMatch(/return -\d+/);
    for (const [, code] of text.matchAll(/REFUSAL\.([A-Z_]+)/g)) expect(Object.keys(Refusal), `${file}: ${code}`).toContain(code);
  }
});
