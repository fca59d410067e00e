// `node --import <sdk>/src/register.js`: lets a plugin project without its own
// node_modules import `router-guest` (resolved to this SDK) in its tests.
// `router-js test` passes it; node >= 20.6 has module.register.

import { register } from "node:module";

register("./resolve-hook.js", import.meta.url);
