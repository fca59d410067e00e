// JSON as serde_json reads and writes it, so that this port emits the bytes the
// Rust redactor emits: serde_json's `Value` (without the preserve_order feature)
// keeps object keys sorted, keeps integers exact (64-bit), writes floats its own
// way (`1.0`, `1e+21`, `1e-7`: checked against the Rust plugin through the
// router), and refuses some inputs JSON.parse accepts (lone surrogate escapes,
// nesting deeper than 128). JSON.parse/JSON.stringify would
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
  return serdeNumber(match[0]);
}

/** 10^0 .. 10^308 as f64 literals, as serde_json's POW10 table. */
const POW10 = Array.from({ length: 309 }, (_, i) => Number(`1e${i}`));
const U64_MAX_DIV_10 = U64_MAX / 10n;
const U64_MAX_MOD_10 = U64_MAX % 10n;
const I32_MAX = 2 ** 31 - 1;

/** Whether `sig * 10 + digit` overflows a u64 (serde_json's `overflow!`). */
function overflows(sig, digit) {
  return sig >= U64_MAX_DIV_10 && (sig > U64_MAX_DIV_10 || digit > U64_MAX_MOD_10);
}

/**
 * The number serde_json (without the float_roundtrip feature) makes of `raw`, a
 * valid JSON number: its algorithm step by step, since it is not correctly
 * rounded for long numbers (`12345678901234567.0` is 1.2345678901234566e+16
 * there, ...568e+16 for JSON.parse): a u64 significand that stops taking digits
 * when it would overflow, a decimal exponent, then one multiplication or
 * division by a power of ten.
 */
export function serdeNumber(raw) {
  const [, sign, int, frac, expSign, exp] = /^(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?)([0-9]+))?$/.exec(raw);
  const positive = sign === "";
  let sig = 0n;
  let exponent = 0;
  let overflowed = false;
  for (const c of int) {
    const digit = BigInt(c.charCodeAt(0) - 48);
    // parse_long_integer: past the overflow, each integer digit only scales.
    if (overflowed || overflows(sig, digit)) {
      overflowed = true;
      exponent += 1;
    } else {
      sig = sig * 10n + digit;
    }
  }
  if (frac === undefined && exp === undefined) {
    if (!overflowed) {
      if (positive) return new JsonNumber(sig);
      // serde_json: `-0` and negatives past i64 are f64.
      if (sig === 0n) return new JsonNumber(-0);
      if (sig <= 2n ** 63n) return new JsonNumber(-sig);
      return new JsonNumber(-Number(sig));
    }
    return new JsonNumber(fromParts(positive, sig, exponent));
  }
  if (frac !== undefined) {
    // parse_decimal: fraction digits count down the exponent until the
    // significand would overflow; the rest are ignored.
    let after = 0;
    for (const c of frac) {
      const digit = BigInt(c.charCodeAt(0) - 48);
      if (overflows(sig, digit)) break;
      sig = sig * 10n + digit;
      after -= 1;
    }
    exponent += after;
  }
  if (exp !== undefined) {
    let value = 0;
    for (const c of exp) {
      const digit = c.charCodeAt(0) - 48;
      if (value > (I32_MAX - digit) / 10) {
        // parse_exponent_overflow: infinity is an error, zero is zero.
        if (sig !== 0n && expSign !== "-") throw new Invalid("number out of range");
        return new JsonNumber(positive ? 0 : -0);
      }
      value = value * 10 + digit;
    }
    exponent = expSign === "-" ? Math.max(exponent - value, -(2 ** 31)) : Math.min(exponent + value, I32_MAX);
  }
  return new JsonNumber(fromParts(positive, sig, exponent));
}

/** serde_json's f64_from_parts. */
function fromParts(positive, sig, exponent) {
  let f = Number(sig);
  for (;;) {
    const pow = POW10[Math.abs(exponent)];
    if (pow !== undefined) {
      if (exponent >= 0) {
        f *= pow;
        if (!Number.isFinite(f)) throw new Invalid("number out of range");
      } else {
        f /= pow;
      }
      break;
    }
    if (f === 0) break;
    if (exponent >= 0) throw new Invalid("number out of range");
    f /= 1e308;
    exponent += 308;
  }
  return positive ? f : -f;
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
  else {
    // Unlike ryu's own format, serde_json signs a positive exponent: 1e+21.
    const e = kk - 1 >= 0 ? `+${kk - 1}` : `${kk - 1}`;
    out = length === 1 ? `${digits}e${e}` : `${digits[0]}.${digits.slice(1)}e${e}`;
  }
  return sign + out;
}
