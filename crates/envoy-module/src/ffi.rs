//! The boundary with Envoy 1.40's dynamic-module ABI: the only module with `unsafe`.
//!
//! Written here from the ABI's documented facts (Envoy's
//! `source/extensions/dynamic_modules/abi/abi.h`, checked against the symbols and the calling
//! convention of the 1.40.0 binary): the few types and callbacks this filter uses, and every
//! HTTP-filter event hook Envoy 1.40 resolves. Everything behind it is safe Rust: the hooks turn
//! Envoy's pointers into an [`EnvoyStream`] (a [`Stream`]) and hand it to [`crate::filter`].
//!
//! Conventions of the ABI relied on below:
//! - a `*_envoy_ptr` is Envoy's object, valid for the duration of the hook it is passed to;
//! - a `*_module_ptr` is ours: a `Box` leaked on creation and reclaimed on destroy;
//! - an `envoy_buffer` (pointer, length) is Envoy's memory, valid until the end of the current
//!   hook or until a setter changes what it points into; a `module_buffer` is ours, copied by
//!   Envoy during the call;
//! - C enums are `int` (4 bytes); `bool` is one byte; structs of two words are passed in two
//!   registers, exactly as a (pointer, length) pair (System V x86-64 and AArch64).

#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};

use crate::filter::{FilterConfig, PerStream, Stream};

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy)]
struct EnvoyBuffer {
    ptr: *const u8,
    length: usize,
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module.
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleBuffer {
    ptr: *const u8,
    length: usize,
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }
    /// A null buffer: `set_header` with it removes the header.
    fn null() -> ModuleBuffer {
        ModuleBuffer {
            ptr: std::ptr::null(),
            length: 0,
        }
    }
}

/// `envoy_dynamic_module_type_envoy_http_header`.
#[repr(C)]
#[derive(Clone, Copy)]
struct EnvoyHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

type FilterEnvoyPtr = *mut c_void;
type ModulePtr = *const c_void;

// envoy_dynamic_module_type_http_header_type
const REQUEST_HEADER: i32 = 0;
const RESPONSE_HEADER: i32 = 2;
// envoy_dynamic_module_type_http_body_type
const RECEIVED_REQUEST_BODY: i32 = 0;
const BUFFERED_REQUEST_BODY: i32 = 1;
// ..._request_headers_status / _response_headers_status
const HEADERS_CONTINUE: i32 = 0;
const HEADERS_STOP_ITERATION: i32 = 1;
// ..._request_body_status / _response_body_status
const BODY_CONTINUE: i32 = 0;
const BODY_STOP_ITERATION_AND_BUFFER: i32 = 1;
// trailers and local-reply statuses: Continue
const CONTINUE: i32 = 0;

/// The ABI version string of Envoy 1.40.0's dynamic modules (what its own built-in Rust module
/// returns). Envoy 1.40 only logs a warning when a module's string differs: the refusal is
/// [`crate::abi_check`]'s.
static ABI_VERSION: &[u8] = b"v0.2.0\0";

extern "C" {
    fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: i32,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: i32,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: i32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body_type: i32,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body_type: i32,
        result_buffer_vector: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_body_size(
        filter: FilterEnvoyPtr,
        body_type: i32,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_drain_body(
        filter: FilterEnvoyPtr,
        body_type: i32,
        number_of_bytes: usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_append_body(
        filter: FilterEnvoyPtr,
        body_type: i32,
        data: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: FilterEnvoyPtr,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter: FilterEnvoyPtr);
}

/// The callbacks this module calls: [`crate::abi_check`] refuses to load unless the Envoy
/// binary exports each of them.
pub(crate) const CALLBACKS_USED: &[&str] = &[
    "envoy_dynamic_module_callback_http_get_headers_size",
    "envoy_dynamic_module_callback_http_get_headers",
    "envoy_dynamic_module_callback_http_set_header",
    "envoy_dynamic_module_callback_http_get_body_chunks_size",
    "envoy_dynamic_module_callback_http_get_body_chunks",
    "envoy_dynamic_module_callback_http_get_body_size",
    "envoy_dynamic_module_callback_http_drain_body",
    "envoy_dynamic_module_callback_http_append_body",
    "envoy_dynamic_module_callback_http_received_buffered_request_body",
    "envoy_dynamic_module_callback_http_clear_route_cache",
];

/// One HTTP stream as Envoy lends it to a hook: safe methods over the callbacks.
pub(crate) struct EnvoyStream {
    ptr: FilterEnvoyPtr,
}

impl EnvoyStream {
    fn headers(&self, header_type: i32) -> Vec<(Vec<u8>, Vec<u8>)> {
        // SAFETY: `self.ptr` is the filter object Envoy passed to the running hook.
        let n =
            unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.ptr, header_type) };
        if n == 0 {
            return Vec::new();
        }
        let mut raw = vec![
            EnvoyHttpHeader {
                key_ptr: std::ptr::null(),
                key_length: 0,
                value_ptr: std::ptr::null(),
                value_length: 0,
            };
            n
        ];
        // SAFETY: `raw` has room for the `n` headers Envoy just counted (the documented
        // precondition); nothing changed the map in between (same hook, same thread).
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_headers(self.ptr, header_type, raw.as_mut_ptr())
        };
        if !ok {
            return Vec::new();
        }
        raw.iter()
            .map(|h| {
                // SAFETY: Envoy filled each entry with pointers into its header map, valid
                // until the end of this hook; they are copied out right here.
                unsafe {
                    (
                        copy(h.key_ptr, h.key_length),
                        copy(h.value_ptr, h.value_length),
                    )
                }
            })
            .collect()
    }

    fn set_header(&mut self, header_type: i32, name: &str, value: Option<&[u8]>) {
        let value = value.map_or(ModuleBuffer::null(), ModuleBuffer::of);
        // SAFETY: `self.ptr` is the running hook's filter; the buffers point into live Rust
        // slices that Envoy copies during the call.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.ptr,
                header_type,
                ModuleBuffer::of(name.as_bytes()),
                value,
            );
        }
    }

    fn body_of(&self, body_type: i32, out: &mut Vec<u8>) {
        // SAFETY: `self.ptr` is the running hook's filter.
        let n =
            unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self.ptr, body_type) };
        if n == 0 {
            return;
        }
        let mut chunks = vec![
            EnvoyBuffer {
                ptr: std::ptr::null(),
                length: 0
            };
            n
        ];
        // SAFETY: room for the `n` chunks just counted, in the same hook.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_body_chunks(
                self.ptr,
                body_type,
                chunks.as_mut_ptr(),
            )
        };
        if !ok {
            return;
        }
        for c in &chunks {
            if !c.ptr.is_null() && c.length > 0 {
                // SAFETY: each chunk is Envoy's buffer slice, valid until the end of the hook;
                // it is copied here.
                out.extend_from_slice(unsafe { std::slice::from_raw_parts(c.ptr, c.length) });
            }
        }
    }

    fn received_is_buffered(&self) -> bool {
        // SAFETY: `self.ptr` is the running hook's filter.
        unsafe { envoy_dynamic_module_callback_http_received_buffered_request_body(self.ptr) }
    }
}

/// Copies `len` bytes of Envoy's memory.
///
/// # Safety
/// `ptr` must be null or valid for reads of `len` bytes.
unsafe fn copy(ptr: *const u8, len: usize) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
}

impl Stream for EnvoyStream {
    fn request_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.headers(REQUEST_HEADER)
    }
    fn set_request_header(&mut self, name: &str, value: &[u8]) {
        self.set_header(REQUEST_HEADER, name, Some(value));
    }
    fn remove_request_header(&mut self, name: &str) {
        self.set_header(REQUEST_HEADER, name, None);
    }
    fn set_response_header(&mut self, name: &str, value: &[u8]) {
        self.set_header(RESPONSE_HEADER, name, Some(value));
    }
    fn remove_response_header(&mut self, name: &str) {
        self.set_header(RESPONSE_HEADER, name, None);
    }
    fn response_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.headers(RESPONSE_HEADER)
    }
    fn request_body(&self) -> Vec<u8> {
        let mut body = Vec::new();
        if self.received_is_buffered() {
            self.body_of(RECEIVED_REQUEST_BODY, &mut body);
        } else {
            // What earlier data callbacks buffered, then this callback's data.
            self.body_of(BUFFERED_REQUEST_BODY, &mut body);
            self.body_of(RECEIVED_REQUEST_BODY, &mut body);
        }
        body
    }
    fn replace_request_body(&mut self, body: &[u8]) {
        for t in [BUFFERED_REQUEST_BODY, RECEIVED_REQUEST_BODY] {
            // SAFETY: `self.ptr` is the running hook's filter (a data hook: the received body
            // exists; an absent buffered body makes these calls return false, harmlessly).
            unsafe {
                let n = envoy_dynamic_module_callback_http_get_body_size(self.ptr, t);
                if n > 0 {
                    envoy_dynamic_module_callback_http_drain_body(self.ptr, t, n);
                }
            }
        }
        // SAFETY: as above; `body` is a live slice Envoy copies during the call.
        unsafe {
            envoy_dynamic_module_callback_http_append_body(
                self.ptr,
                RECEIVED_REQUEST_BODY,
                ModuleBuffer::of(body),
            );
        }
    }
    fn clear_route_cache(&mut self) {
        // SAFETY: `self.ptr` is the running hook's filter.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.ptr) }
    }
}

// ------------------------------------------------------------------------------------------
// Event hooks (exported, resolved by Envoy with dlsym).
// ------------------------------------------------------------------------------------------

/// Checks that the Envoy loading this module has the ABI it was written for; a null return
/// makes Envoy refuse the module ("Failed to initialize dynamic module").
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    match crate::abi_check::check() {
        Ok(()) => ABI_VERSION.as_ptr().cast(),
        Err(why) => {
            eprintln!("mcp_envoy_module: refusing to load: {why}");
            std::ptr::null()
        }
    }
}

/// Reads the filter's configuration (a JSON string: see [`FilterConfig`]); null refuses it.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _config_envoy_ptr: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ModulePtr {
    // SAFETY: Envoy's buffer holding the filter_config bytes, valid during this hook.
    let bytes = unsafe { copy(config.ptr, config.length) };
    match FilterConfig::from_json(&bytes) {
        Ok(c) => Box::into_raw(Box::new(c)) as ModulePtr,
        Err(e) => {
            eprintln!("mcp_envoy_module: bad filter_config: {e}");
            std::ptr::null()
        }
    }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: ModulePtr) {
    if !config.is_null() {
        // SAFETY: made by Box::into_raw in config_new; Envoy destroys it once, after every
        // filter made from it.
        drop(unsafe { Box::from_raw(config as *mut FilterConfig) });
    }
}

/// Per-route configuration is not used: a dummy non-null pointer accepts any.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> ModulePtr {
    ABI_VERSION.as_ptr().cast()
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(_config: ModulePtr) {}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: ModulePtr,
    _filter: FilterEnvoyPtr,
) -> ModulePtr {
    if config.is_null() {
        return std::ptr::null();
    }
    // SAFETY: `config` came from config_new and outlives every filter made from it; it is
    // only read (shared by the worker threads: FilterConfig is Sync).
    let config: &'static FilterConfig = unsafe { &*(config as *const FilterConfig) };
    Box::into_raw(Box::new(PerStream::new(config))) as ModulePtr
}

/// The per-stream state behind a module pointer.
///
/// # Safety
/// `ptr` must come from `on_http_filter_new` and not be destroyed yet; Envoy calls one
/// stream's hooks on one thread, one at a time.
unsafe fn per_stream<'a>(ptr: ModulePtr) -> &'a mut PerStream {
    // SAFETY: guaranteed by the caller.
    unsafe { &mut *(ptr as *mut PerStream) }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter: FilterEnvoyPtr,
    module: ModulePtr,
    end_of_stream: bool,
) -> i32 {
    // SAFETY: Envoy passes the module pointer of this live stream.
    let state = unsafe { per_stream(module) };
    if state.on_request_headers(&mut EnvoyStream { ptr: filter }, end_of_stream) {
        HEADERS_STOP_ITERATION
    } else {
        HEADERS_CONTINUE
    }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter: FilterEnvoyPtr,
    module: ModulePtr,
    end_of_stream: bool,
) -> i32 {
    // SAFETY: Envoy passes the module pointer of this live stream.
    let state = unsafe { per_stream(module) };
    if state.on_request_body(&mut EnvoyStream { ptr: filter }, end_of_stream) {
        BODY_STOP_ITERATION_AND_BUFFER
    } else {
        BODY_CONTINUE
    }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    filter: FilterEnvoyPtr,
    module: ModulePtr,
) -> i32 {
    // SAFETY: Envoy passes the module pointer of this live stream.
    let state = unsafe { per_stream(module) };
    state.on_request_trailers(&mut EnvoyStream { ptr: filter });
    CONTINUE
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter: FilterEnvoyPtr,
    module: ModulePtr,
    _end_of_stream: bool,
) -> i32 {
    // SAFETY: Envoy passes the module pointer of this live stream.
    let state = unsafe { per_stream(module) };
    state.on_response_headers(&mut EnvoyStream { ptr: filter });
    HEADERS_CONTINUE
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
    _end_of_stream: bool,
) -> i32 {
    BODY_CONTINUE
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
) -> i32 {
    CONTINUE
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: ModulePtr) {
    if !module.is_null() {
        // SAFETY: made by Box::into_raw in filter_new; Envoy destroys each filter once.
        drop(unsafe { Box::from_raw(module as *mut PerStream) });
    }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
    _response_code: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> i32 {
    CONTINUE
}

// Hooks of features this filter does not use (callouts, streams, schedulers, watermarks):
// Envoy 1.40 resolves them all, so they exist, and do nothing.

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
    _callout_id: u64,
    _result: i32,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _body_chunks: *const EnvoyBuffer,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
    _stream_id: u64,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
    _stream_id: u64,
    _reason: i32,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
    _event_id: u64,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter: FilterEnvoyPtr,
    _module: ModulePtr,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: *mut c_void,
    _config: ModulePtr,
    _event_id: u64,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: *mut c_void,
    _config: ModulePtr,
    _callout_id: u64,
    _result: i32,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _body_chunks: *const EnvoyBuffer,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _config_envoy: *mut c_void,
    _config: ModulePtr,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _config_envoy: *mut c_void,
    _config: ModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _config_envoy: *mut c_void,
    _config: ModulePtr,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _config_envoy: *mut c_void,
    _config: ModulePtr,
    _stream_id: u64,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _config_envoy: *mut c_void,
    _config: ModulePtr,
    _stream_id: u64,
    _reason: i32,
) {
}
