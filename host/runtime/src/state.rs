//! The data of one invocation's `Store`: WASI (granting nothing), the capabilities' states
//! and the resource limiter.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use wasmtime::component::Linker;

use crate::capabilities::context::ContextState;
use crate::capabilities::http::OutboundHttp;
use crate::capabilities::kv::KvState;
use crate::capabilities::log::LogState;
use crate::capabilities::secrets::{Redactions, SecretsState};
use crate::capabilities::skills::SkillsState;
use crate::capabilities::{Capability, HasCapability, Setup};
use crate::limits::SandboxLimiter;
use crate::outcome::Usage;

/// Declares the host capabilities once: each `field: State` becomes a field of
/// [`Capabilities`], is linked, built per invocation and asked for its usage through
/// [`Capability`], and is reachable from the store's data through [`HasCapability`].
macro_rules! capabilities {
    ($($field:ident: $state:ty),* $(,)?) => {
        /// The per-invocation state of every host capability.
        pub(crate) struct Capabilities {
            $(pub(crate) $field: $state,)*
        }

        impl Capabilities {
            /// Links every capability.
            pub(crate) fn add_to_linker(
                linker: &mut Linker<InvocationState>,
            ) -> wasmtime::Result<()> {
                $(<$state as Capability>::add_to_linker(linker)?;)*
                Ok(())
            }

            /// Every capability's state for one invocation.
            pub(crate) fn new(setup: &Setup<'_>) -> Self {
                Self { $($field: <$state as Capability>::new(setup),)* }
            }

            /// What the invocation used of each.
            pub(crate) fn report(&self, usage: &mut Usage) {
                $(self.$field.report(usage);)*
            }
        }

        $(
            impl HasCapability<$state> for InvocationState {
                fn capability(&mut self) -> &mut $state {
                    &mut self.caps.$field
                }
            }
        )*
    };
}

capabilities! {
    log: LogState,
    context: ContextState,
    kv: KvState,
    secrets: SecretsState,
    http: OutboundHttp,
    skills: SkillsState,
}

/// Everything one invocation's store holds. Built fresh per invocation and dropped with it.
pub(crate) struct InvocationState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http_ctx: WasiHttpCtx,
    pub(crate) caps: Capabilities,
    pub(crate) limiter: SandboxLimiter,
}

impl InvocationState {
    pub(crate) fn new(stderr: StderrCapture, caps: Capabilities, limiter: SandboxLimiter) -> Self {
        // The WASI base is linked because every toolchain's standard library imports it, but
        // it grants nothing: no preopened directories, no environment, no arguments, no
        // sockets, no name lookups; stdin is empty and stdout is discarded.
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            http_ctx: WasiHttpCtx::new(),
            caps,
            limiter,
        }
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.caps.http,
        }
    }
}

/// The guest's stderr: keeps the first `capacity` bytes and silently discards the rest, so a
/// chatty guest neither fails its writes nor grows host memory.
#[derive(Clone)]
pub(crate) struct StderrCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
    redactions: Redactions,
}

impl StderrCapture {
    pub(crate) fn new(capacity: usize, redactions: Redactions) -> Self {
        Self {
            buffer: Arc::default(),
            capacity,
            redactions,
        }
    }

    /// What was kept, as lossy UTF-8, with the secret values the guest was handed masked.
    pub(crate) fn contents(&self) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&buffer);
        self.redactions.mask(&text).into_owned()
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl IsTerminal for StderrCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for StderrCapture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for StderrCapture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
