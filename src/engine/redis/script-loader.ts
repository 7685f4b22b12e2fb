/**
 * Reads the engine's Lua scripts (BullMQ's layout): one script a file named
 * `<camelName>-<numKeys>.lua`, shared fragments in `includes/` pulled in by a
 * `--- @include "includes/x"` line, each fragment inlined once per script. Some fragments are
 * generated from TypeScript (the refusal codes), so Lua and TypeScript cannot disagree.
 *
 * The scripts must be exactly those of the table the engine declares, each with the key count
 * the table gives: a file renamed, added or dropped fails at load, not at the first call.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

export interface EngineScript<Name extends string = string> {
  /** The camel-case name from the file name (`reserve`). */
  name: Name;
  numberOfKeys: number;
  lua: string;
  /** From the script's content (includes inlined): two releases never run each other's scripts. */
  version: string;
}

const SCRIPT_FILE = /^([a-z][A-Za-z0-9]*)-(\d+)\.lua$/;
const INCLUDE = /^--- @include "([^"]+)"\s*$/gm;

function inline(dir: URL, source: string, seen: Set<string>, from: string, generated: Record<string, string>): string {
  return source.replace(INCLUDE, (_line, ref: string) => {
    const path = ref.endsWith('.lua') ? ref : `${ref}.lua`;
    if (seen.has(path)) return '';
    seen.add(path);
    let text = generated[ref];
    if (text === undefined) {
      try {
        text = readFileSync(new URL(path, dir), 'utf8');
      } catch {
        throw new Error(`${from}: cannot include "${ref}"`);
      }
    }
    return inline(dir, text, seen, path, generated).trimEnd();
  });
}

/**
 * Loads every script of `dir` (a folder URL ending in `/`), includes inlined, and checks them
 * against `table` (script name → number of keys).
 */
export function loadScripts<Name extends string>(dir: URL, table: Record<Name, number>, generated: Record<string, string> = {}): Map<Name, EngineScript<Name>> {
  const scripts = new Map<Name, EngineScript<Name>>();
  for (const file of readdirSync(dir).sort()) {
    const match = SCRIPT_FILE.exec(file);
    if (!match) continue;
    const name = match[1] as Name;
    const numberOfKeys = Number(match[2]);
    if (!(name in table)) throw new Error(`engine script ${file} is not in the script table`);
    if (table[name] !== numberOfKeys) throw new Error(`engine script ${file} takes ${numberOfKeys} keys; the script table says ${table[name]}`);
    const lua = inline(dir, readFileSync(new URL(file, dir), 'utf8'), new Set(), file, generated);
    scripts.set(name, { name, numberOfKeys, lua, version: createHash('sha1').update(lua).digest('hex').slice(0, 10) });
  }
  const missing = (Object.keys(table) as Name[]).filter((name) => !scripts.has(name));
  if (missing.length) throw new Error(`engine scripts missing: ${missing.join(', ')}`);
  return scripts;
}

/** A Lua fragment declaring `REFUSAL.<CODE> = <n>` for each refusal code. */
export function luaRefusals(codes: Record<string, number>): string {
  const fields = Object.entries(codes)
    .map(([code, n]) => `  ${code} = ${n},`)
    .join('\n');
  return `-- Generated from engine-refusals.ts: the negative replies a caller turns into errors.\nlocal REFUSAL = {\n${fields}\n}`;
}

export type ScriptReply = number | string | null | ScriptReply[];

/** Calls a script defined by {@link defineScripts}: its keys, then its arguments (sent as strings). */
export type ScriptRunner<Name extends string> = (name: Name, keys: string[], args: Array<string | number>) => Promise<ScriptReply>;

/**
 * Defines each script on `client` as a command named after its content's version
 * (`stampede_<version>_<namespace><name>`: two releases never run each other's scripts; ioredis
 * sends EVALSHA and falls back to EVAL once), and returns the one way to call them.
 */
export function defineScripts<Name extends string>(client: Redis | Cluster, scripts: Map<Name, EngineScript<Name>>, namespace = ''): ScriptRunner<Name> {
  const commands = new Map<Name, string>();
  for (const script of scripts.values()) {
    const command = `stampede_${script.version}_${namespace}${script.name}`;
    client.defineCommand(command, { lua: script.lua, numberOfKeys: script.numberOfKeys });
    commands.set(script.name, command);
  }
  const methods = client as unknown as Record<string, (...args: string[]) => Promise<ScriptReply>>;
  return (name, keys, args) => methods[commands.get(name)!].call(client, ...keys, ...args.map(String));
}
