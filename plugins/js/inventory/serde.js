// Reading an Order from JSON bytes the way serde_json's Deserializer and serde's
// derived Deserialize read it in the Rust inventory, down to the error messages
// and their positions ("missing field `orderId` at line 1 column 12"): a 422
// from this port then says what the Rust plugin's says. It follows serde_json
// 1.0.154 (SliceRead, no optional features) step by step; the comments name
// the serde_json functions each part mirrors.

/** A serde error; `position` is filled in as serde_json's fix_position does. */
export class SerdeError extends Error {
  constructor(message, position) {
    super(message);
    this.reason = message;
    this.position = position;
  }
  /** The text serde_json's Display gives. */
  toString() {
    return `${this.reason} at line ${this.position.line} column ${this.position.column}`;
  }
}

const MAX_DEPTH = 128;
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

class Deserializer {
  constructor(bytes) {
    this.b = bytes;
    this.i = 0;
    this.depth = MAX_DEPTH;
  }

  // SliceRead::position_of_index
  position(i) {
    let lineStart = 0;
    let line = 1;
    for (let k = 0; k < i; k++) {
      if (this.b[k] === 0x0a) {
        line += 1;
        lineStart = k + 1;
      }
    }
    return { line, column: i - lineStart };
  }
  error(reason) { return new SerdeError(reason, this.position(this.i)); }
  peekError(reason) { return new SerdeError(reason, this.position(Math.min(this.b.length, this.i + 1))); }
  fix(err) {
    if (err.position === undefined) err.position = this.position(this.i);
    return err;
  }
  peek() { return this.i < this.b.length ? this.b[this.i] : undefined; }
  eat() { this.i += 1; }
  next() { return this.i < this.b.length ? this.b[this.i++] : undefined; }
  ws() {
    for (;;) {
      const c = this.peek();
      if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) this.eat();
      else return c;
    }
  }

  parseIdent(rest) {
    for (const expected of rest) {
      const c = this.next();
      if (c === undefined) throw this.error("EOF while parsing a value");
      if (c !== expected.charCodeAt(0)) throw this.error("expected ident");
    }
  }

  // SliceRead::parse_str (after the opening quote): the string, or a thrown error.
  parseStr() {
    const bytes = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined) throw this.error("EOF while parsing a string");
      if (c === 0x22) {
        this.eat();
        try {
          return new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
        } catch {
          throw this.error("invalid unicode code point");
        }
      }
      if (c === 0x5c) {
        this.eat();
        this.parseEscape(bytes);
        continue;
      }
      if (c < 0x20) {
        this.eat();
        throw this.error("control character (\\u0000-\\u001F) found while parsing a string");
      }
      bytes.push(c);
      this.eat();
    }
  }

  // SliceRead::decode_hex_escape: four bytes taken at once, then judged.
  // SliceRead::ignore_str: no UTF-8 check, no surrogate check, and a control
  // character is reported before it rather than after.
  ignoreStr() {
    for (;;) {
      const c = this.peek();
      if (c === undefined) throw this.error("EOF while parsing a string");
      if (c === 0x22) return this.eat();
      if (c === 0x5c) {
        this.eat();
        const e = this.next();
        if (e === undefined) throw this.error("EOF while parsing a string");
        if (e === 0x75) this.hex4();
        else if (![0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74].includes(e)) throw this.error("invalid escape");
        continue;
      }
      if (c < 0x20) throw this.error("control character (\\u0000-\\u001F) found while parsing a string");
      this.eat();
    }
  }

  hex4() {
    if (this.b.length - this.i < 4) {
      this.i = this.b.length;
      throw this.error("EOF while parsing a string");
    }
    const text = String.fromCharCode(...this.b.subarray(this.i, this.i + 4));
    this.i += 4;
    if (!/^[0-9a-fA-F]{4}$/.test(text)) throw this.error("invalid escape");
    return parseInt(text, 16);
  }

  parseEscape(bytes) {
    const c = this.next();
    if (c === undefined) throw this.error("EOF while parsing a string");
    const simple = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9 }[c];
    if (simple !== undefined) {
      bytes.push(simple);
      return;
    }
    if (c !== 0x75) throw this.error("invalid escape");
    let code = this.hex4();
    if (code >= 0xdc00 && code <= 0xdfff) throw this.error("lone leading surrogate in hex escape");
    if (code >= 0xd800 && code <= 0xdbff) {
      for (const expected of [0x5c, 0x75]) {
        const next = this.peek();
        if (next === undefined) throw this.error("EOF while parsing a string");
        this.eat();
        if (next !== expected) throw this.error("unexpected end of hex escape");
      }
      const low = this.hex4();
      if (low < 0xdc00 || low > 0xdfff) throw this.error("lone leading surrogate in hex escape");
      code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
    }
    bytes.push(...new TextEncoder().encode(String.fromCodePoint(code)));
  }

  // parse_integer and friends: a number as ParserNumber ({u64}, {i64} or {f64}).
  parseInteger(positive) {
    const c = this.next();
    if (c === 0x30) {
      const p = this.peek();
      if (p !== undefined && p >= 0x30 && p <= 0x39) throw this.peekError("invalid number");
      return this.parseNumber(positive, 0n);
    }
    if (c === undefined || c < 0x31 || c > 0x39) throw this.error("invalid number");
    let sig = BigInt(c - 0x30);
    for (;;) {
      const p = this.peek();
      if (p === undefined || p < 0x30 || p > 0x39) return this.parseNumber(positive, sig);
      const digit = BigInt(p - 0x30);
      if (sig * 10n + digit > U64_MAX) return { f64: this.parseLongInteger(positive, sig) };
      this.eat();
      sig = sig * 10n + digit;
    }
  }
  parseNumber(positive, sig) {
    const p = this.peek();
    if (p === 0x2e) return { f64: this.parseDecimal(positive, sig, 0) };
    if (p === 0x65 || p === 0x45) return { f64: this.parseExponent(positive, sig, 0) };
    if (positive) return { u64: sig };
    if (sig === 0n || sig > 2n ** 63n) return { f64: -Number(sig) };
    return { i64: -sig };
  }
  parseLongInteger(positive, sig) {
    let exponent = 0;
    for (;;) {
      const p = this.peek();
      if (p !== undefined && p >= 0x30 && p <= 0x39) {
        this.eat();
        exponent += 1;
      } else if (p === 0x2e) return this.parseDecimal(positive, sig, exponent);
      else if (p === 0x65 || p === 0x45) return this.parseExponent(positive, sig, exponent);
      else return this.fromParts(positive, sig, exponent);
    }
  }
  parseDecimal(positive, sig, before) {
    this.eat();
    let after = 0;
    for (;;) {
      const p = this.peek();
      if (p === undefined || p < 0x30 || p > 0x39) break;
      const digit = BigInt(p - 0x30);
      if (sig * 10n + digit > U64_MAX) {
        while (this.peek() !== undefined && this.peek() >= 0x30 && this.peek() <= 0x39) this.eat();
        const e = this.peek();
        if (e === 0x65 || e === 0x45) return this.parseExponent(positive, sig, before + after);
        return this.fromParts(positive, sig, before + after);
      }
      this.eat();
      sig = sig * 10n + digit;
      after -= 1;
    }
    if (after === 0) {
      throw this.peek() === undefined ? this.peekError("EOF while parsing a value") : this.peekError("invalid number");
    }
    const e = this.peek();
    if (e === 0x65 || e === 0x45) return this.parseExponent(positive, sig, before + after);
    return this.fromParts(positive, sig, before + after);
  }
  parseExponent(positive, sig, start) {
    this.eat();
    let positiveExp = true;
    if (this.peek() === 0x2b) this.eat();
    else if (this.peek() === 0x2d) {
      this.eat();
      positiveExp = false;
    }
    const first = this.next();
    if (first === undefined) throw this.error("EOF while parsing a value");
    if (first < 0x30 || first > 0x39) throw this.error("invalid number");
    let exp = first - 0x30;
    for (;;) {
      const p = this.peek();
      if (p === undefined || p < 0x30 || p > 0x39) break;
      this.eat();
      const digit = p - 0x30;
      if (exp * 10 + digit > 2 ** 31 - 1) {
        if (sig !== 0n && positiveExp) throw this.error("number out of range");
        while (this.peek() !== undefined && this.peek() >= 0x30 && this.peek() <= 0x39) this.eat();
        return positive ? 0 : -0;
      }
      exp = exp * 10 + digit;
    }
    const finalExp = positiveExp ? Math.min(start + exp, 2 ** 31 - 1) : Math.max(start - exp, -(2 ** 31));
    return this.fromParts(positive, sig, finalExp);
  }
  fromParts(positive, sig, exponent) {
    let f = Number(sig);
    for (;;) {
      const k = Math.abs(exponent);
      if (k <= 308) {
        if (exponent >= 0) {
          f *= Number(`1e${k}`);
          if (!Number.isFinite(f)) throw this.error("number out of range");
        } else {
          f /= Number(`1e${k}`);
        }
        break;
      }
      if (f === 0) break;
      if (exponent >= 0) throw this.error("number out of range");
      f /= 1e308;
      exponent += 308;
    }
    return positive ? f : -f;
  }

  // ignore_value
  ignoreValue() {
    const stack = [];
    let enclosing;
    for (;;) {
      const c = this.ws();
      if (c === undefined) throw this.peekError("EOF while parsing a value");
      let frame;
      if (c === 0x6e) { this.eat(); this.parseIdent("ull"); }
      else if (c === 0x74) { this.eat(); this.parseIdent("rue"); }
      else if (c === 0x66) { this.eat(); this.parseIdent("alse"); }
      else if (c === 0x2d) { this.eat(); this.parseInteger(false); }
      else if (c >= 0x30 && c <= 0x39) { this.parseInteger(true); }
      else if (c === 0x22) { this.eat(); this.ignoreStr(); }
      else if (c === 0x5b || c === 0x7b) {
        if (enclosing !== undefined) stack.push(enclosing);
        enclosing = undefined;
        this.eat();
        frame = c;
      } else throw this.peekError("expected value");
      let acceptComma;
      if (frame !== undefined) acceptComma = false;
      else if (enclosing !== undefined) {
        frame = enclosing;
        enclosing = undefined;
        acceptComma = true;
      } else if (stack.length > 0) {
        frame = stack.pop();
        acceptComma = true;
      } else return;
      let done = false;
      for (;;) {
        const p = this.ws();
        if (p === 0x2c && acceptComma) {
          this.eat();
          break;
        }
        if ((p === 0x5d && frame === 0x5b) || (p === 0x7d && frame === 0x7b)) {
          this.eat();
          if (stack.length === 0) {
            done = true;
            break;
          }
          frame = stack.pop();
          acceptComma = true;
          continue;
        }
        if (p === undefined) {
          throw this.peekError(frame === 0x5b ? "EOF while parsing a list" : "EOF while parsing an object");
        }
        if (acceptComma) {
          throw this.peekError(frame === 0x5b ? "expected `,` or `]`" : "expected `,` or `}`");
        }
        break;
      }
      if (done) return;
      if (frame === 0x7b) {
        const q = this.ws();
        if (q === 0x22) this.eat();
        else if (q === undefined) throw this.peekError("EOF while parsing an object");
        else throw this.peekError("key must be a string");
        this.ignoreStr();
        const colon = this.ws();
        if (colon === 0x3a) this.eat();
        else if (colon === undefined) throw this.peekError("EOF while parsing an object");
        else throw this.peekError("expected `:`");
      }
      enclosing = frame;
    }
  }

  // peek_invalid_type: consumes a scalar to describe it; the error has no position yet.
  invalidType(expected) {
    const c = this.peek();
    let unexpected;
    if (c === 0x6e) { this.eat(); this.parseIdent("ull"); unexpected = "null"; }
    else if (c === 0x74) { this.eat(); this.parseIdent("rue"); unexpected = "boolean `true`"; }
    else if (c === 0x66) { this.eat(); this.parseIdent("alse"); unexpected = "boolean `false`"; }
    else if (c === 0x2d) { this.eat(); unexpected = describeNumber(this.parseInteger(false)); }
    else if (c !== undefined && c >= 0x30 && c <= 0x39) unexpected = describeNumber(this.parseInteger(true));
    else if (c === 0x22) { this.eat(); unexpected = `string ${rustDebug(this.parseStr())}`; }
    else if (c === 0x5b) unexpected = "sequence";
    else if (c === 0x7b) unexpected = "map";
    else throw this.peekError("expected value");
    return this.fix(new SerdeError(`invalid type: ${unexpected}, expected ${expected}`));
  }

  // deserialize_string
  string() {
    const c = this.ws();
    if (c === undefined) throw this.peekError("EOF while parsing a value");
    if (c !== 0x22) throw this.invalidType("a string");
    this.eat();
    return this.parseStr();
  }

  // deserialize_i64 (deserialize_number + the i64 visitor)
  i64() {
    const c = this.ws();
    if (c === undefined) throw this.peekError("EOF while parsing a value");
    let n;
    if (c === 0x2d) {
      this.eat();
      n = this.parseInteger(false);
    } else if (c >= 0x30 && c <= 0x39) n = this.parseInteger(true);
    else throw this.invalidType("i64");
    if (n.f64 !== undefined) throw this.fix(new SerdeError(`invalid type: ${describeNumber(n)}, expected i64`));
    if (n.u64 !== undefined && n.u64 > I64_MAX) {
      throw this.fix(new SerdeError(`invalid value: integer \`${n.u64}\`, expected i64`));
    }
    return n.u64 ?? n.i64;
  }

  // deserialize_seq with Vec's visitor
  seq(element) {
    const c = this.ws();
    if (c === undefined) throw this.peekError("EOF while parsing a value");
    if (c !== 0x5b) throw this.invalidType("a sequence");
    return this.nested(() => {
      const out = [];
      const access = this.seqAccess();
      while (access.next()) out.push(element());
      return out;
    }, () => this.endSeq());
  }

  // deserialize_struct with a derived visitor: `fields` maps each name to its reader.
  struct(name, fields) {
    const names = Object.keys(fields);
    const c = this.ws();
    if (c === undefined) throw this.peekError("EOF while parsing a value");
    if (c === 0x5b) {
      return this.nested(() => {
        const access = this.seqAccess();
        const out = {};
        for (const [k, key] of names.entries()) {
          if (!access.next()) {
            throw new SerdeError(`invalid length ${k}, expected struct ${name} with ${names.length} elements`);
          }
          out[key] = fields[key]();
        }
        return out;
      }, () => this.endSeq());
    }
    if (c === 0x7b) {
      return this.nested(() => {
        const out = {};
        let first = true;
        for (;;) {
          // MapAccess::next_key_seed
          let p = this.ws();
          if (p === 0x7d) break;
          if (p === 0x2c && !first) {
            this.eat();
            p = this.ws();
          } else if (p === undefined) throw this.peekError("EOF while parsing an object");
          else if (first) first = false;
          else throw this.peekError("expected `,` or `}`");
          if (p === 0x7d) throw this.peekError("trailing comma");
          if (p === undefined) throw this.peekError("EOF while parsing a value");
          if (p !== 0x22) throw this.peekError("key must be a string");
          this.eat();
          const key = this.parseStr();
          if (Object.hasOwn(fields, key) && Object.hasOwn(out, key)) {
            throw new SerdeError(`duplicate field \`${key}\``);
          }
          // parse_object_colon
          const colon = this.ws();
          if (colon === 0x3a) this.eat();
          else if (colon === undefined) throw this.peekError("EOF while parsing an object");
          else throw this.peekError("expected `:`");
          if (Object.hasOwn(fields, key)) out[key] = fields[key]();
          else this.ignoreValue();
        }
        for (const key of names) {
          if (!Object.hasOwn(out, key)) throw new SerdeError(`missing field \`${key}\``);
        }
        return out;
      }, () => this.endMap());
    }
    throw this.invalidType(`struct ${name}`);
  }

  /** check_recursion!, then `match (visit, end)`: the visit's error wins, end runs anyway. */
  nested(visit, end) {
    this.depth -= 1;
    if (this.depth === 0) throw this.error("recursion limit exceeded");
    this.eat();
    let value;
    let visitError;
    try {
      value = visit();
    } catch (e) {
      if (!(e instanceof SerdeError)) throw e;
      visitError = e;
    }
    this.depth += 1;
    // A positioned error from the visit is final: serde_json returns it with `?`
    // before end_* runs (tri!); only errors without a position (from the visitor)
    // meet end_* and then fix_position.
    if (visitError !== undefined && visitError.position !== undefined) throw visitError;
    let endError;
    try {
      end();
    } catch (e) {
      if (!(e instanceof SerdeError)) throw e;
      endError = e;
    }
    if (visitError !== undefined) throw this.fix(visitError);
    if (endError !== undefined) throw endError;
    return value;
  }

  seqAccess() {
    let first = true;
    return {
      // SeqAccess::next_element_seed: true when an element follows.
      next: () => {
        let p = this.ws();
        if (p === 0x5d) return false;
        if (p === 0x2c && !first) {
          this.eat();
          p = this.ws();
        } else if (p === undefined) throw this.peekError("EOF while parsing a list");
        else if (first) first = false;
        else throw this.peekError("expected `,` or `]`");
        if (p === 0x5d) throw this.peekError("trailing comma");
        if (p === undefined) throw this.peekError("EOF while parsing a value");
        return true;
      },
    };
  }

  endSeq() {
    const p = this.ws();
    if (p === 0x5d) return this.eat();
    if (p === 0x2c) {
      this.eat();
      throw this.ws() === 0x5d ? this.peekError("trailing comma") : this.peekError("trailing characters");
    }
    if (p === undefined) throw this.peekError("EOF while parsing a list");
    throw this.peekError("trailing characters");
  }

  endMap() {
    const p = this.ws();
    if (p === 0x7d) return this.eat();
    if (p === 0x2c) throw this.peekError("trailing comma");
    if (p === undefined) throw this.peekError("EOF while parsing an object");
    throw this.peekError("trailing characters");
  }

  // Deserializer::end
  end() {
    if (this.ws() !== undefined) throw this.peekError("trailing characters");
  }
}

function describeNumber(n) {
  if (n.u64 !== undefined) return `integer \`${n.u64}\``;
  if (n.i64 !== undefined) return `integer \`${n.i64}\``;
  return `floating point \`${ryu(n.f64)}\``;
}

/** serde_json's float format (its Unexpected::Float too): 1.0, 1e+21, 1.5e-7. */
function ryu(value) {
  if (!Number.isFinite(value)) return value > 0 ? "inf" : value < 0 ? "-inf" : "NaN";
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const sign = value < 0 ? "-" : "";
  const [mantissa, exponent] = Math.abs(value).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const kk = Number(exponent) + 1;
  const k = kk - digits.length;
  let out;
  if (k >= 0 && kk <= 16) out = `${digits}${"0".repeat(k)}.0`;
  else if (kk > 0 && kk <= 16) out = `${digits.slice(0, kk)}.${digits.slice(kk)}`;
  else if (kk > -5 && kk <= 0) out = `0.${"0".repeat(-kk)}${digits}`;
  else {
    const e = kk - 1 >= 0 ? `+${kk - 1}` : `${kk - 1}`;
    out = digits.length === 1 ? `${digits}e${e}` : `${digits[0]}.${digits.slice(1)}e${e}`;
  }
  return sign + out;
}

/** Rust's `{:?}` of a string, for the characters JSON data usually holds. */
function rustDebug(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c === 0) out += "\\0";
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

/**
 * The Order in `bytes` as `serde_json::from_slice::<Order>` reads it:
 * `{orderId: string, items: {productId: string, quantity: bigint}[]}`, or a
 * thrown SerdeError whose toString() is serde_json's message.
 */
export function orderFromSlice(bytes) {
  const de = new Deserializer(bytes);
  const item = () => de.struct("OrderItem", { productId: () => de.string(), quantity: () => de.i64() });
  const order = de.struct("Order", { orderId: () => de.string(), items: () => de.seq(item) });
  de.end();
  return order;
}
