//! The worlds a plugin may implement, and their bindings.

use super::host::HostState;

/// Bindings of the `handler` world, generated from `wit/`. Public so that the
/// benchmarks' bare-wasmtime floor calls plugins through exactly these.
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "handler",
        exports: { default: async },
        // A Redis-backed store does I/O: its calls yield instead of blocking.
        imports: { "router:plugin/kv": async },
        // The event handed to a plugin is lowered from borrowed fields
        // (`EventParam<'_>`), so a call does not first copy every attribute
        // and the data into owned strings; what the guest returns is owned
        // (`EventResult`).
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

/// Bindings of the `transform` world, sharing the interfaces of `bindings`.
pub(super) mod transform_bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transform",
        exports: { default: async },
        ownership: Borrowing { duplicate_if_necessary: true },
        with: {
            "router:plugin/types": super::bindings::router::plugin::types,
            "router:plugin/log": super::bindings::router::plugin::log,
            "router:plugin/config": super::bindings::router::plugin::config,
            "router:plugin/kv": super::bindings::router::plugin::kv,
        },
    });
}

pub use bindings::router::plugin::types::HandlerError as WitHandlerError;

/// The world of plugins that handle events (route `handler`).
pub const HANDLER_WORLD: &str = "router:plugin/handler@0.1.0";
/// The world of plugins that transform events (route `transform` `wasm` steps).
pub const TRANSFORM_WORLD: &str = "router:plugin/transform@0.1.0";

/// Which world a loaded plugin implements, with its prepared instantiation.
pub(crate) enum Prepared {
    /// The `handler` world.
    Handler(bindings::HandlerPre<HostState>),
    /// The `transform` world.
    Transform(transform_bindings::TransformPre<HostState>),
}
