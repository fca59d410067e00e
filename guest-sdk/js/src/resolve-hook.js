// The module resolution hook of register.js: `router-guest` and its subpaths
// resolve to this SDK when the importing project cannot resolve them itself.

const SDK = new URL("../", import.meta.url);
const TARGETS = {
  "router-guest": new URL("src/index.js", SDK).href,
  "router-guest/testing": new URL("src/testing.js", SDK).href,
};

/** Node's resolve hook: the project's own copy wins, this SDK is the fallback. */
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (e) {
    if (specifier in TARGETS) return { url: TARGETS[specifier], shortCircuit: true };
    throw e;
  }
}
