#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

// Used only as a WebAssembly plugin's allocator, and by its own tests.
#[cfg_attr(
    not(all(target_arch = "wasm32", feature = "allocator")),
    allow(dead_code)
)]
mod alloc;
pub mod config;
mod error;
mod event;
pub mod kv;
pub mod log;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use error::HandlerError;
pub use event::Event;
pub use serde;
pub use serde_json;

/// Size classes over dlmalloc (see `src/alloc.rs`): an event's strings cost a
/// few instructions each to allocate and free instead of hundreds.
#[cfg(all(target_arch = "wasm32", feature = "allocator"))]
#[global_allocator]
static ALLOCATOR: alloc::Classes = alloc::Classes::new();

/// The bindings generated from `wit/router.wit` (`router:plugin@0.2.0`); use
/// the curated API of this crate instead. Public only because [`handler!`]
/// expands in the plugin's crate.
#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        path: "wit",
        world: "handler",
        // The export macro runs in the plugin's crate, not here, so it must be
        // public and find the types through this crate's path.
        pub_export_macro: true,
        default_bindings_module: "router_guest::bindings",
        additional_derives: [PartialEq, Eq],
    });
}

/// The bindings of the `transform` world, sharing the interfaces (and so the
/// types) of [`bindings`]. Public only because [`transform!`] expands in the
/// plugin's crate.
#[doc(hidden)]
pub mod transform_bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        path: "wit",
        world: "transform",
        with: {
            "router:plugin/types@0.2.0": crate::bindings::router::plugin::types,
            "router:plugin/log@0.2.0": crate::bindings::router::plugin::log,
            "router:plugin/config@0.2.0": crate::bindings::router::plugin::config,
            "router:plugin/kv@0.2.0": crate::bindings::router::plugin::kv,
        },
        pub_export_macro: true,
        export_macro_name: "export_transform",
        default_bindings_module: "router_guest::transform_bindings",
    });
}

/// What [`handler!`] expands to call; not part of the API.
#[doc(hidden)]
pub mod __private {
    use crate::bindings::router::plugin::types as wit;
    use crate::{Event, HandlerError};
    use std::sync::Once;

    /// Adapts a plugin's handler to the generated export.
    pub fn handle(
        event: wit::Event,
        handler: fn(Event) -> Result<Vec<Event>, HandlerError>,
    ) -> Result<Vec<wit::Event>, wit::HandlerError> {
        static PANIC_HOOK: Once = Once::new();
        PANIC_HOOK.call_once(log_panics);
        handler(Event::from_wit(event))
            .map(|events| events.into_iter().map(Event::into_wit).collect())
            .map_err(HandlerError::into_wit)
    }

    /// Adapts a plugin's transform function to the generated export.
    pub fn transform(
        event: wit::Event,
        transform: fn(Event) -> Result<Option<Event>, HandlerError>,
    ) -> Result<Option<wit::Event>, wit::HandlerError> {
        static PANIC_HOOK: Once = Once::new();
        PANIC_HOOK.call_once(log_panics);
        transform(Event::from_wit(event))
            .map(|event| event.map(Event::into_wit))
            .map_err(HandlerError::into_wit)
    }

    /// Sends panic messages to the router's log. A panic traps the instance and
    /// the router sees only "unreachable"; the message and location that explain
    /// it would otherwise go to a stderr the router does not show.
    fn log_panics() {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("(no message)");
            match info.location() {
                Some(at) => crate::log::error(format!(
                    "panicked at {}:{}:{}: {message}",
                    at.file(),
                    at.line(),
                    at.column()
                )),
                None => crate::log::error(format!("panicked: {message}")),
            }
        }));
    }
}

/// Exports a handler function as the plugin's `handle` export.
///
/// The function must have the signature
/// `fn(Event) -> Result<Vec<Event>, HandlerError>`. Invoke the macro once, at the
/// top level of the plugin's `cdylib` crate:
///
/// ```
/// use router_guest::{Event, HandlerError};
///
/// fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
///     Ok(vec![event.derive(format!("{}-seen", event.id()), "com.example.seen")])
/// }
///
/// router_guest::handler!(handle);
/// ```
#[macro_export]
macro_rules! handler {
    ($handle:path $(,)?) => {
        struct __RouterGuestHandler;

        impl $crate::bindings::Guest for __RouterGuestHandler {
            fn handle(
                event: $crate::bindings::router::plugin::types::Event,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::bindings::router::plugin::types::Event>,
                $crate::bindings::router::plugin::types::HandlerError,
            > {
                $crate::__private::handle(event, $handle)
            }
        }

        $crate::bindings::export!(__RouterGuestHandler with_types_in $crate::bindings);
    };
}

/// Exports a transform function as the plugin's `transform` export (the
/// `transform` world: a `wasm` step of a route's `transform` list).
///
/// The function must have the signature
/// `fn(Event) -> Result<Option<Event>, HandlerError>`: return the event to deliver,
/// changed or not, or `None` to drop it.
///
/// ```
/// use router_guest::{Event, HandlerError};
///
/// fn transform(event: Event) -> Result<Option<Event>, HandlerError> {
///     Ok(Some(event.with_extension("checked", "yes")))
/// }
///
/// router_guest::transform!(transform);
/// ```
#[macro_export]
macro_rules! transform {
    ($transform:path $(,)?) => {
        struct __RouterGuestTransform;

        impl $crate::transform_bindings::Guest for __RouterGuestTransform {
            fn transform(
                event: $crate::bindings::router::plugin::types::Event,
            ) -> ::core::result::Result<
                ::core::option::Option<$crate::bindings::router::plugin::types::Event>,
                $crate::bindings::router::plugin::types::HandlerError,
            > {
                $crate::__private::transform(event, $transform)
            }
        }

        $crate::transform_bindings::export_transform!(
            __RouterGuestTransform with_types_in $crate::transform_bindings
        );
    };
}
