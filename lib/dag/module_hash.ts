/**
 * The hash of what a module says, not of how it is laid out: its token stream (see
 * module_tokens.ts) with what `deno fmt` or a comment may change taken out, so formatting a
 * file or commenting it reruns nothing while any change of meaning does:
 *
 * - comments and white space are not tokens;
 * - a string is its cooked value, whatever its quotes (a template keeps its raw text: a tagged
 *   template such as `String.raw` reads it);
 * - an object key written as a string that is an identifier is that identifier (`"a": 1` is
 *   `a: 1`);
 * - a `,` right before `)`, `]` or `}` is dropped (trailing commas);
 * - a `;` is dropped — unless the next token is `(`, `[`, a template, `+`, `-` or `/`, where
 *   leaving it out would make one expression of two statements (so `a;\n(b)` and `a\n(b)`
 *   still differ), or it is inside a `for (…)` head: a statement's end is then told by the
 *   tokens alone, on one line or two;
 * - one parameter of an arrow function in parentheses is that parameter (`(x) => x` is `x => x`);
 * - a leading `|` or `&` of a union or intersection type is dropped;
 * - `>>` and `>>>` are single `>`s (`Array<Array<T>>` may be broken between them).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Token } from "./module_tokens.ts";

/** Bumped when the normalization changes, so hashes cached under another one are not reused. */
export const MODULE_HASH_FORMAT = 1;

/** Tokens after which a leading `|` or `&` of a type can stand. */
const BEFORE_TYPE = new Set([
  "=",
  ":",
  "(",
  "<",
  ",",
  "[",
  "?",
  "=>",
  "as",
  "extends",
  "satisfies",
]);

/**
 * The tokens that carry a module's meaning, as strings (see the module's list).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenize } from "./module_tokens.ts";
 *
 * const a = normalizedTokens(tokenize("f((x) => [x, 'y',]);", "a.ts"));
 * const b = normalizedTokens(tokenize('f(x => [x, "y"])', "b.ts"));
 * assert.deepEqual(a, b);
 * ```
 */
export function normalizedTokens(tokens: readonly Token[]): string[] {
  const out: string[] = [];
  /** Paren and brace depths of the open `for (` heads, innermost last. */
  const forHeads: string[] = [];
  let parens = 0;
  let braces = 0;
  const depth = () => `${parens}/${braces}`;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    const next = tokens[i + 1];
    const prev = tokens[i - 1];
    if (t.kind !== "punct") {
      out.push(t.kind === "string" ? stringToken(t, prev, next) : `${KIND_MARK[t.kind]}${t.text}`);
      continue;
    }
    // `( x ) =>` (or `( x, ) =>`): the parentheses of a lone arrow parameter.
    const lone = t.text === "(" ? loneArrowParameter(tokens, i) : 0;
    if (lone > 0) {
      out.push(`i${next.text}`, "p=>");
      i += lone;
      continue;
    }
    if (t.text === "(") {
      parens++;
      if (isIdent(prev, "for") || isIdent(prev, "await") && isIdent(tokens[i - 2], "for")) {
        forHeads.push(depth());
      }
    } else if (t.text === ")") {
      if (forHeads.at(-1) === depth()) forHeads.pop();
      parens--;
    } else if (t.text === "{") braces++;
    else if (t.text === "}") braces--;
    if (t.text === "," && next && closes(next) && !(prev?.text === "," || prev?.text === "[")) {
      continue;
    }
    if (t.text === ";" && forHeads.at(-1) !== depth() && optionalSemicolon(out.at(-1), next)) {
      continue;
    }
    const typeStart = prev && prev.kind !== "string" && BEFORE_TYPE.has(prev.text);
    if ((t.text === "|" || t.text === "&") && typeStart) continue;
    if (t.text === ">>" || t.text === ">>>") {
      for (const _ of t.text) out.push("p>");
      continue;
    }
    out.push(`p${t.text}`);
  }
  return out;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** A string, or an object key written as a string that is an identifier (`"a": 1` is `a: 1`). */
function stringToken(t: Token, prev: Token | undefined, next: Token | undefined): string {
  const key = next?.kind === "punct" && next.text === ":" && prev?.kind === "punct" &&
    (prev.text === "{" || prev.text === ",") && IDENTIFIER.test(t.text);
  return key ? `i${t.text}` : `s${JSON.stringify(t.text)}`;
}

/** How many tokens after `(` at `i` end a lone arrow parameter `( x ) =>` (0 when none). */
function loneArrowParameter(tokens: readonly Token[], i: number): number {
  if (tokens[i + 1]?.kind !== "ident") return 0;
  const comma = tokens[i + 2]?.kind === "punct" && tokens[i + 2].text === "," ? 1 : 0;
  const close = tokens[i + 2 + comma];
  const arrow = tokens[i + 3 + comma];
  return close?.kind === "punct" && close.text === ")" && arrow?.kind === "punct" &&
      arrow.text === "=>"
    ? 3 + comma
    : 0;
}

function isIdent(t: Token | undefined, text: string): boolean {
  return t?.kind === "ident" && t.text === text;
}

const KIND_MARK: Record<Token["kind"], string> = {
  ident: "i",
  number: "n",
  string: "s",
  template: "t",
  "template-head": "h",
  "template-middle": "m",
  "template-tail": "e",
  regex: "r",
  punct: "p",
};

function closes(t: Token): boolean {
  return t.kind === "punct" && (t.text === ")" || t.text === "]" || t.text === "}");
}

/**
 * Whether a `;` can go without changing what the code says, after the normalized token `prev`
 * and before the token `next`.
 */
function optionalSemicolon(prev: string | undefined, next: Token | undefined): boolean {
  // An empty statement where no statement precedes (`{ ;(a)` as `deno fmt` writes it without
  // semicolons): nothing before it could be continued.
  if (prev === undefined || next === undefined || prev === "p{" || prev === "p;") return true;
  // A statement that starts like this would continue the previous one without the `;`.
  if (next.kind === "template" || next.kind === "template-head" || next.kind === "regex") {
    return false;
  }
  return !(next.kind === "punct" && /^[([+\-/]/.test(next.text));
}

/**
 * The sha256 of a module's normalized tokens.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenize } from "./module_tokens.ts";
 *
 * const hash = (s: string) => tokenHash(tokenize(s, "m.ts"));
 * assert.equal(hash("let a = 1; // one\n"), hash("let a = 1\n"));
 * assert.notEqual(hash("a;\n(b)"), hash("a\n(b)"));
 * ```
 */
export function tokenHash(tokens: readonly Token[]): string {
  const h = createHash("sha256");
  for (const t of normalizedTokens(tokens)) h.update(t).update("\n");
  return h.digest("hex");
}
