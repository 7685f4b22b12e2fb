/**
 * Reads the engine's Lua scripts (BullMQ's layout): one script a file named
 * `<camelName>-<numKeys>.lua`, shared fragments in `includes/` pulled in by a
 * `--- @include "includes/x"` line, each fragment inlined once per script.
 */
import { readFileSync, readdirSync } from 'node:fs';

export interface EngineScript {
  /** The camel-case name from the file name (`reserve`). */
  name: string;
  numberOfKeys: number;
  lua: string;
}

const SCRIPT_FILE = /^([a-z][A-Za-z0-9]*)-(\d+)\.lua$/;
const INCLUDE = /^--- @include "([^"]+)"\s*$/gm;

function inline(dir: URL, source: string, seen: Set<string>, from: string): string {
  return source.replace(INCLUDE, (_line, ref: string) => {
    const path = ref.endsWith('.lua') ? ref : `${ref}.lua`;
    if (seen.has(path)) return '';
    seen.add(path);
    let text: string;
    try {
      text = readFileSync(new URL(path, dir), 'utf8');
    } catch {
      throw new Error(`${from}: cannot include "${ref}"`);
    }
    return inline(dir, text, seen, path).trimEnd();
  });
}

/** Loads every script of `dir` (a folder URL ending in `/`), includes inlined. */
export function loadScripts(dir: URL): EngineScript[] {
  const scripts: EngineScript[] = [];
  for (const file of readdirSync(dir).sort()) {
    const match = SCRIPT_FILE.exec(file);
    if (!match) continue;
    const source = readFileSync(new URL(file, dir), 'utf8');
    scripts.push({ name: match[1], numberOfKeys: Number(match[2]), lua: inline(dir, source, new Set(), file) });
  }
  return scripts;
}
