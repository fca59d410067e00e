//! Bare wasmtime, the floor of a handler call through the router: the same
//! component under the router's engine settings ([`router::plugin::engine_config`])
//! and the same bindings, in a store that holds only a default WASI context, with
//! no dispatcher, pool, limits, metrics or timeout around the call.
//!
//! Shared by the criterion benchmarks (`pipeline.rs`) and the floor server
//! (`floor_server.rs` beside it), which puts it behind HTTP.

use router::plugin::{engine_config, start_epoch_ticker, to_wit, wit_extensions};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use router::plugin::bindings::router::plugin::{config, kv, log, types};
use router::plugin::bindings::{Handler, HandlerPre};

/// The store data: WASI and nothing the guest can see of the router.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for State {}
impl log::Host for State {
    fn log(&mut self, _: log::Level, _: String) {}
}
impl config::Host for State {
    fn get(&mut self, _: String) -> Option<String> {
        None
    }
}
impl kv::Host for State {
    async fn get(&mut self, _: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        Err(no_store())
    }
    async fn set(&mut self, _: String, _: Vec<u8>, _: Option<u64>) -> Result<(), kv::KvError> {
        Err(no_store())
    }
    async fn delete(&mut self, _: String) -> Result<bool, kv::KvError> {
        Err(no_store())
    }
    async fn increment(&mut self, _: String, _: i64) -> Result<i64, kv::KvError> {
        Err(no_store())
    }
}

fn no_store() -> kv::KvError {
    kv::KvError::Unavailable("no store in the floor benchmark".into())
}

/// The component at `path`, prepared once, as the router prepares a plugin.
pub struct Floor {
    engine: Engine,
    pre: HandlerPre<State>,
}

impl Floor {
    /// Compiles and links the component; the epoch ticks as in the router.
    pub fn new(path: &str) -> Self {
        let engine = Engine::new(&engine_config().expect("engine config")).expect("engine");
        start_epoch_ticker(&engine).expect("epoch ticker");
        let component = Component::from_file(&engine, path).expect("component");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("WASI");
        Handler::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .expect("router interfaces");
        let pre = HandlerPre::new(linker.instantiate_pre(&component).expect("pre"))
            .expect("handler world");
        Self { engine, pre }
    }

    /// A new store with a default WASI context, and the component in it.
    pub async fn instance(&self) -> (Store<State>, Handler) {
        let state = State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.set_epoch_deadline(100);
        let handler = self
            .pre
            .instantiate_async(&mut store)
            .await
            .expect("instantiate");
        (store, handler)
    }
}

/// Calls `handle` with `e`, lowered as the router lowers it; the number of
/// events emitted.
pub async fn call(store: &mut Store<State>, handler: &Handler, e: &router::event::Event) -> usize {
    let extensions = wit_extensions(e);
    let event = to_wit(e, &extensions);
    store.set_epoch_deadline(100);
    match handler.call_handle(&mut *store, event).await {
        Ok(Ok(emitted)) => emitted.len(),
        other => panic!("the trivial handler failed: {other:?}"),
    }
}
