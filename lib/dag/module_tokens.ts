/**
 * The tokens of a TypeScript or JavaScript module, for hashing what it says rather than how it
 * is laid out: identifiers, numbers, punctuation, strings (by their cooked value), templates
 * (with nested `${}`), regular expressions (told from division by the token before) — comments
 * and white space dropped, each token with the line it starts on. A scanner, not a parser: it
 * needs to know no grammar beyond where a token ends.
 *
 * @module
 */

/** What a token is. */
export type TokenKind =
  | "ident"
  | "number"
  | "string"
  | "template"
  | "template-head"
  | "template-middle"
  | "template-tail"
  | "regex"
  | "punct";

/** One significant token. */
export interface Token {
  kind: TokenKind;
  /** Its text: the cooked value of a string, the raw text of anything else. */
  text: string;
  /** The line it starts on (0-based). */
  line: number;
}

/** Raised when a module cannot be tokenized (an unterminated string, comment or template). */
export class TokenizeError extends Error {
  override readonly name = "TokenizeError";
}

/** Keywords after which a `/` starts a regular expression, not a division. */
const BEFORE_REGEX = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
]);

/** Punctuators, longest first, so the first that matches is the token. */
const PUNCTUATORS = [
  ">>>=",
  "...",
  "===",
  "!==",
  "**=",
  "<<=",
  ">>=",
  ">>>",
  "&&=",
  "||=",
  "??=",
  "=>",
  "==",
  "!=",
  "<=",
  ">=",
  "&&",
  "||",
  "??",
  "?.",
  "++",
  "--",
  "+=",
  "-=",
  "*=",
  "/=",
  "%=",
  "&=",
  "|=",
  "^=",
  "**",
  "<<",
  ">>",
];

const IDENT_START = /[A-Za-z_$\u0080-\uffff]/;
const IDENT_PART = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * The significant tokens of `source`; `name` is the module's name for errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const tokens = tokenize("const a = 'x' // a comment\n  / 2;", "m.ts");
 * assert.deepEqual(tokens.map((t) => [t.kind, t.text]), [
 *   ["ident", "const"], ["ident", "a"], ["punct", "="], ["string", "x"], ["punct", "/"],
 *   ["number", "2"], ["punct", ";"],
 * ]);
 * ```
 */
export function tokenize(source: string, name: string): Token[] {
  return new Scanner(source, name).run();
}

class Scanner {
  readonly #src: string;
  readonly #name: string;
  #pos = 0;
  #line = 0;
  readonly #out: Token[] = [];
  /** Brace depths at which a template's `${` was opened, innermost last. */
  readonly #templates: number[] = [];
  #braces = 0;

  constructor(source: string, name: string) {
    this.#src = source;
    this.#name = name;
  }

  run(): Token[] {
    const src = this.#src;
    while (this.#pos < src.length) {
      const c = src[this.#pos];
      if (c === "\n") {
        this.#line++;
        this.#pos++;
      } else if (c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v") this.#pos++;
      else if (c === "\ufeff" || c === "\u00a0" || c === "\u2028" || c === "\u2029") this.#pos++;
      else if (c === "/" && src[this.#pos + 1] === "/") this.#skipLine();
      else if (c === "/" && src[this.#pos + 1] === "*") this.#skipBlock();
      else if (c === '"' || c === "'") this.#string(c);
      else if (c === "`") this.#template("template", "template-head");
      else if (c === "}" && this.#templates.at(-1) === this.#braces) {
        this.#templates.pop();
        this.#template("template-tail", "template-middle");
      } else if (isDigit(c) || (c === "." && isDigit(src[this.#pos + 1] ?? ""))) this.#number();
      else if (IDENT_START.test(c)) this.#ident();
      else if (c === "\\" && src[this.#pos + 1] === "u") this.#ident();
      else if (c === "/" && this.#regexAllowed()) this.#regex();
      else this.#punct();
    }
    if (this.#templates.length > 0) this.#fail("a template's ${ is not closed");
    return this.#out;
  }

  #push(kind: TokenKind, text: string, line: number): void {
    this.#out.push({ kind, text, line });
  }

  #fail(what: string): never {
    throw new TokenizeError(`${this.#name}:${this.#line + 1}: ${what}`);
  }

  #skipLine(): void {
    const end = this.#src.indexOf("\n", this.#pos);
    this.#pos = end < 0 ? this.#src.length : end;
  }

  #skipBlock(): void {
    const end = this.#src.indexOf("*/", this.#pos + 2);
    if (end < 0) this.#fail("a /* comment is not closed");
    for (let i = this.#pos; i < end; i++) if (this.#src[i] === "\n") this.#line++;
    this.#pos = end + 2;
  }

  #ident(): void {
    const start = this.#pos;
    const src = this.#src;
    while (this.#pos < src.length) {
      const c = src[this.#pos];
      if (c === "\\" && src[this.#pos + 1] === "u") {
        this.#pos += 2;
        if (src[this.#pos] === "{") this.#pos = src.indexOf("}", this.#pos) + 1;
        else this.#pos += 4;
      } else if (IDENT_PART.test(c)) this.#pos++;
      else break;
    }
    this.#push("ident", src.slice(start, this.#pos), this.#line);
  }

  #number(): void {
    const src = this.#src;
    const start = this.#pos;
    const radix = src[start] === "0" && /[xXoObB]/.test(src[start + 1] ?? "");
    this.#pos += radix ? 2 : 0;
    while (this.#pos < src.length) {
      const c = src[this.#pos];
      const exponentSign = !radix && (c === "+" || c === "-") && /[eE]/.test(src[this.#pos - 1]);
      if (/[0-9A-Za-z_.]/.test(c) || exponentSign) this.#pos++;
      else break;
    }
    this.#push("number", src.slice(start, this.#pos), this.#line);
  }

  #string(quote: string): void {
    const src = this.#src;
    const line = this.#line;
    let value = "";
    this.#pos++;
    while (true) {
      if (this.#pos >= src.length) this.#fail("a string is not closed");
      const c = src[this.#pos];
      if (c === quote) break;
      if (c === "\n") this.#fail("a string is not closed at the end of its line");
      if (c === "\\") value += this.#escape();
      else {
        value += c;
        this.#pos++;
      }
    }
    this.#pos++;
    this.#push("string", value, line);
  }

  /** The cooked value of the escape at the current position (a backslash), and moves past it. */
  #escape(): string {
    const src = this.#src;
    const c = src[this.#pos + 1];
    this.#pos += 2;
    switch (c) {
      case "n":
        return "\n";
      case "t":
        return "\t";
      case "r":
        return "\r";
      case "b":
        return "\b";
      case "f":
        return "\f";
      case "v":
        return "\v";
      case "0":
        if (!isDigit(src[this.#pos] ?? "")) return "\0";
        break;
      case "x": {
        const hex = src.slice(this.#pos, this.#pos + 2);
        this.#pos += 2;
        return String.fromCharCode(parseInt(hex, 16));
      }
      case "u": {
        const braced = src[this.#pos] === "{";
        const end = braced ? src.indexOf("}", this.#pos) : this.#pos + 4;
        const hex = src.slice(braced ? this.#pos + 1 : this.#pos, end);
        this.#pos = braced ? end + 1 : end;
        return String.fromCodePoint(parseInt(hex, 16));
      }
      case "\r":
        if (src[this.#pos] === "\n") this.#pos++;
        this.#line++;
        return "";
      case "\n":
      case "\u2028":
      case "\u2029":
        this.#line++;
        return "";
    }
    // A legacy octal escape is kept as written: the cooked value of anything else is itself.
    return c === undefined ? this.#fail("a string ends in a backslash") : c;
  }

  /**
   * A template from its opening `` ` `` (or from the `}` that closes a `${`) up to its end
   * (`whole`) or up to the next `${` (`open`); its raw text is the token.
   */
  #template(whole: TokenKind, open: TokenKind): void {
    const src = this.#src;
    const line = this.#line;
    const start = ++this.#pos;
    while (true) {
      if (this.#pos >= src.length) this.#fail("a template is not closed");
      const c = src[this.#pos];
      if (c === "\\") {
        if (src[this.#pos + 1] === "\n") this.#line++;
        this.#pos += 2;
      } else if (c === "`") {
        this.#push(whole, src.slice(start, this.#pos), line);
        this.#pos++;
        return;
      } else if (c === "$" && src[this.#pos + 1] === "{") {
        this.#push(open, src.slice(start, this.#pos), line);
        this.#pos += 2;
        this.#templates.push(this.#braces);
        return;
      } else {
        if (c === "\n") this.#line++;
        this.#pos++;
      }
    }
  }

  /** Whether a `/` here starts a regular expression: where an expression can begin. */
  #regexAllowed(): boolean {
    const prev = this.#out.at(-1);
    if (!prev) return true;
    switch (prev.kind) {
      case "ident":
        return BEFORE_REGEX.has(prev.text);
      case "punct":
        return prev.text !== ")" && prev.text !== "]" && prev.text !== "}";
      case "template-head":
      case "template-middle":
        return true;
      default:
        return false;
    }
  }

  #regex(): void {
    const src = this.#src;
    const start = this.#pos++;
    let inClass = false;
    while (true) {
      const c = src[this.#pos];
      if (c === undefined || c === "\n") this.#fail("a regular expression is not closed");
      if (c === "\\") this.#pos += 2;
      else {
        this.#pos++;
        if (c === "[") inClass = true;
        else if (c === "]") inClass = false;
        else if (c === "/" && !inClass) break;
      }
    }
    while (this.#pos < src.length && IDENT_PART.test(src[this.#pos])) this.#pos++;
    this.#push("regex", src.slice(start, this.#pos), this.#line);
  }

  #punct(): void {
    const src = this.#src;
    let text = src[this.#pos];
    for (const p of PUNCTUATORS) {
      if (src.startsWith(p, this.#pos)) {
        text = p;
        break;
      }
    }
    // `?.5` is a conditional followed by a number, not optional chaining.
    if (text === "?." && isDigit(src[this.#pos + 2] ?? "")) text = "?";
    if (text === "{") this.#braces++;
    else if (text === "}") this.#braces--;
    this.#pos += text.length;
    this.#push("punct", text, this.#line);
  }
}

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}
