// JSON as serde_json reads and writes it, so that this port emits the bytes the
// Rust redactor emits: serde_json's `Value` (without the preserve_order feature)
// keeps object keys sorted, keeps integers exact (64-bit), writes floats the ryu
// way (`1.0`, `1e21`), and refuses some inputs JSON.parse accepts (lone
// surrogate escapes, nesting deeper than 128). JSON.parse/JSON.stringify would
// reorder nothing, round integers past 2^53 and print `1.0` as `1`.
//
// Values: null, booleans, strings, Map (objects), arrays, and JsonNumber
// (numbers, kept as parsed).

const decoder = new TextDecoder("utf-8", { fatal: true });

/** A number as serde_json holds it: an exact integer (BigInt) or an f64. */
export class JsonNumber {
  /** @param {bigint | number} value a BigInt for an integer, a number for a float */
  constructor(value) {
    this.value = value;
  }
}

const U64_MAX = 2n ** 64n - 1n;
const I64_MIN = -(2n ** 63n);
/** serde_json's default recursion limit. */
const MAX_DEPTH = 128;

class Invalid extends Error {}

/** The JSON value in `bytes`, or undefined when serde_json would refuse them. */
export function parse(bytes) {
  let text;
  try {
    text = decoder.decode(bytes);
  } catch {
    return undefined;
  }
  // The BOM is not skipped by serde_json either; TextDecoder strips it, so refuse it.
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return undefined;
  const parser = { text, at: 0 };
  try {
    skipSpace(parser);
    const value = parseValue(parser, 0);
    skipSpace(parser);
    if (parser.at !== text.length) throw new Invalid("trailing characters");
    return value;
  } catch (e) {
    if (e instanceof Invalid) return undefined;
    throw e;
  }
}

function skipSpace(p) {
  while (p.at < p.text.length) {
    const c = p.text.charCodeAt(p.at);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p.at += 1;
    else break;
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function parseString(p) {
  STRING.lastIndex = p.at;
  const match = STRING.exec(p.text);
  if (match === null) throw new Invalid("string");
  p.at = STRING.lastIndex;
  const value = JSON.parse(match[0]);
  // Raw text is valid UTF-8 (the decoder checked), so a lone surrogate came from an escape.
  if (LONE_SURROGATE.test(value)) throw new Invalid("lone surrogate");
  return value;
}

function parseNumber(p) {
  NUMBER.lastIndex = p.at;
  const match = NUMBER.exec(p.text);
  if (match === null) throw new Invalid("number");
  p.at = NUMBER.lastIndex;
  const raw = match[0];
  if (match[1] === undefined && match[2] === undefined) {
    const int = BigInt(raw);
    // "-0" is an f64 in serde_json (negative zero); out of 64-bit range too.
    if (raw.startsWith("-") && int === 0n) return new JsonNumber(-0);
    if (int <= U64_MAX && int >= I64_MIN) return new JsonNumber(int);
  }
  const float = Number(raw);
  if (!Number.isFinite(float)) throw new Invalid("number out of range");
  return new JsonNumber(float);
}

function parseValue(p, depth) {
  const c = p.text[p.at];
  if (c === "{" || c === "[") {
    if (depth >= MAX_DEPTH) throw new Invalid("recursion limit exceeded");
    p.at += 1;
    skipSpace(p);
    const close = c === "{" ? "}" : "]";
    const out = c === "{" ? new Map() : [];
    if (p.text[p.at] === close) {
      p.at += 1;
      return out;
    }
    for (;;) {
      if (c === "{") {
        if (p.text[p.at] !== '"') throw new Invalid("key must be a string");
        const key = parseString(p);
        skipSpace(p);
        if (p.text[p.at] !== ":") throw new Invalid("expected `:`");
        p.at += 1;
        skipSpace(p);
        // A repeated key: the later value wins, as in serde_json's map.
        out.set(key, parseValue(p, depth + 1));
      } else {
        out.push(parseValue(p, depth + 1));
      }
      skipSpace(p);
      if (p.text[p.at] === ",") {
        p.at += 1;
        skipSpace(p);
        continue;
      }
      if (p.text[p.at] === close) {
        p.at += 1;
        return out;
      }
      throw new Invalid("expected `,` or a close");
    }
  }
  if (c === '"') return parseString(p);
  if (c === "-" || (c >= "0" && c <= "9")) return parseNumber(p);
  for (const [word, value] of [["true", true], ["false", false], ["null", null]]) {
    if (p.text.startsWith(word, p.at)) {
      p.at += word.length;
      return value;
    }
  }
  throw new Invalid("expected value");
}

/**
 * The value at JSON Pointer `path` (RFC 6901) as serde_json's `pointer_mut`
 * finds it, or undefined.
 */
export function pointer(value, path) {
  if (path === "") return value;
  if (!path.startsWith("/")) return undefined;
  let target = value;
  for (const raw of path.slice(1).split("/")) {
    const token = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (target instanceof Map) {
      if (!target.has(token)) return undefined;
      target = target.get(token);
    } else if (Array.isArray(target)) {
      // serde_json's parse_index: no sign, no leading zero.
      if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
      const index = Number(token);
      if (index >= target.length) return undefined;
      target = target[index];
    } else {
      return undefined;
    }
  }
  return target;
}

/** Orders keys as Rust's String does: by UTF-8 bytes, that is by code points. */
function compareKeys(a, b) {
  const x = a[Symbol.iterator]();
  const y = b[Symbol.iterator]();
  for (;;) {
    const p = x.next();
    const q = y.next();
    if (p.done || q.done) return p.done === q.done ? 0 : p.done ? -1 : 1;
    const diff = p.value.codePointAt(0) - q.value.codePointAt(0);
    if (diff !== 0) return diff;
  }
}

/** serde_json's compact text of `value` (`serde_json::to_vec`). */
export function serialize(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return JSON.stringify(value);
  if (value instanceof JsonNumber) return formatNumber(value.value);
  if (Array.isArray(value)) return `[${value.map(serialize).join(",")}]`;
  const keys = [...value.keys()].sort(compareKeys);
  return `{${keys.map((key) => `${JSON.stringify(key)}:${serialize(value.get(key))}`).join(",")}}`;
}

/** An integer as written; an f64 as ryu writes it (serde_json's float format). */
export function formatNumber(value) {
  if (typeof value === "bigint") return value.toString();
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const sign = value < 0 ? "-" : "";
  // toExponential() gives the shortest digits that round-trip, as ryu does.
  const [mantissa, exponent] = Math.abs(value).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const length = digits.length;
  const kk = Number(exponent) + 1; // where the decimal point goes, from the first digit
  const k = kk - length;
  let out;
  if (k >= 0 && kk <= 16) out = `${digits}${"0".repeat(k)}.0`;
  else if (kk > 0 && kk <= 16) out = `${digits.slice(0, kk)}.${digits.slice(kk)}`;
  else if (kk > -5 && kk <= 0) out = `0.${"0".repeat(-kk)}${digits}`;
  else if (length === 1) out = `${digits}e${kk - 1}`;
  else out = `${digits[0]}.${digits.slice(1)}e${kk - 1}`;
  return sign + out;
}
