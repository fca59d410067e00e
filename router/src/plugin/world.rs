//! The worlds a plugin may implement, in every version of the `router:plugin`
//! package the router serves, and their bindings.
//!
//! The current version, 0.2.0 (`wit/router.wit`), and the frozen 0.1.0
//! (`wit/v0.1.0/`) are linked into the same linker, with one store-data type:
//! their interfaces have distinct names (the version is part of them), so a
//! component's imports reach the version it was built against. They differ only
//! in `kv` (`kv-error` is a string in 0.1.0, a variant in 0.2.0), whose host
//! side is written for each (`host.rs`). The exports `handle` and `transform` are
//! plain functions over the same records in both, and wasmtime checks records by
//! structure, not by name: the pool calls every component through the current
//! bindings, and a component's version is read from the names of its imports.

use super::host::HostState;
use std::collections::BTreeSet;
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};

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

/// Bindings of the frozen 0.1.0 `handler` world, for the host side of its
/// imports (`transform` imports the same interfaces). Its `types` are the
/// current ones: the records did not change.
#[allow(missing_docs, dead_code)]
pub(super) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "handler",
        exports: { default: async },
        imports: { "router:plugin/kv": async },
        ownership: Borrowing { duplicate_if_necessary: true },
        with: {
            "router:plugin/types": crate::plugin::bindings::router::plugin::types,
        },
    });
}

/// The world of plugins that handle events (route `handler`).
pub const HANDLER_WORLD: &str = "router:plugin/handler@0.2.0";
/// The world of plugins that transform events (route `transform` `wasm` steps).
pub const TRANSFORM_WORLD: &str = "router:plugin/transform@0.2.0";

/// A version of the `router:plugin` package that the router serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// 0.1.0: `kv-error` is a string.
    V0_1,
    /// 0.2.0, the current version: `kv-error` is a variant.
    V0_2,
}

impl Version {
    /// Every version served, newest first.
    pub const SERVED: [Version; 2] = [Version::V0_2, Version::V0_1];

    /// The version as written after the package name's `@`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_1 => "0.1.0",
            Self::V0_2 => "0.2.0",
        }
    }

    /// The name of the `handler` world of this version.
    pub fn handler_world(self) -> &'static str {
        match self {
            Self::V0_1 => "router:plugin/handler@0.1.0",
            Self::V0_2 => HANDLER_WORLD,
        }
    }

    /// The name of the `transform` world of this version.
    pub fn transform_world(self) -> &'static str {
        match self {
            Self::V0_1 => "router:plugin/transform@0.1.0",
            Self::V0_2 => TRANSFORM_WORLD,
        }
    }

    /// The version of `router:plugin` that `component` was built against, from
    /// the names of its imports; the current one when it imports nothing of the
    /// package. An error says which version it asks for, when the router does not
    /// serve it.
    pub(super) fn of(component: &Component, engine: &Engine) -> Result<Self, String> {
        let asked: BTreeSet<String> = component
            .component_type()
            .imports(engine)
            .filter_map(|(name, _)| {
                let interface = name.strip_prefix("router:plugin/")?;
                Some(interface.split_once('@').map_or("", |(_, v)| v).to_owned())
            })
            .collect();
        let asked: Vec<String> = asked.into_iter().collect();
        let version = match asked.as_slice() {
            [] => return Ok(Self::V0_2),
            [version] => version.as_str(),
            several => {
                return Err(format!(
                    "it imports several versions of router:plugin ({})",
                    several.join(", ")
                ));
            }
        };
        Self::SERVED
            .into_iter()
            .find(|v| v.as_str() == version)
            .ok_or_else(|| {
                let served: Vec<&str> = Self::SERVED.iter().map(|v| v.as_str()).collect();
                let package = match version {
                    "" => "router:plugin without a version".to_owned(),
                    v => format!("router:plugin@{v}"),
                };
                format!(
                    "it is built against {package}; this router serves {}",
                    served.join(" and ")
                )
            })
    }
}

/// Adds the host side of every served version's interfaces to `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    bindings::Handler::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_1::Handler::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

/// Which world a loaded plugin implements, with its prepared instantiation.
pub(crate) enum Prepared {
    /// The `handler` world.
    Handler(bindings::HandlerPre<HostState>),
    /// The `transform` world.
    Transform(transform_bindings::TransformPre<HostState>),
}

impl Prepared {
    /// The world whose export `pre` has; the `handler` world's complaint when it
    /// has neither.
    pub(super) fn new(pre: InstancePre<HostState>) -> wasmtime::Result<Self> {
        match bindings::HandlerPre::new(pre.clone()) {
            Ok(pre) => Ok(Self::Handler(pre)),
            Err(handler_error) => transform_bindings::TransformPre::new(pre)
                .map(Self::Transform)
                .map_err(|_| handler_error),
        }
    }
}
