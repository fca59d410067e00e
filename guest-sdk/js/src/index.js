// router-guest: the SDK for writing router plugins in JavaScript. The Rust SDK
// (guest-sdk/) has the same surface; README.md describes both the API and the
// build. Plugin code imports from here and never sees the WIT shapes.

export { Event } from "./event.js";
export { HandlerError, KvError } from "./error.js";
export * as log from "./log.js";
export * as config from "./config.js";
export * as kv from "./kv.js";
export { handler, transform } from "./export.js";
