//! Tests of the request declaration: wire order frozen, routing, the documentation table.

use super::*;

/// One request of every variant, in wire order.
fn one_of_each() -> Vec<Request> {
    let mut all = up_to_pointers();
    all.extend(host_memory_and_vmm());
    all.extend(from_copy());
    all
}

/// The session, device, context, memory and pointer families' samples.
fn up_to_pointers() -> Vec<Request> {
    use Request as R;
    vec![
        R::Ping,
        R::GetDeviceInfo { device: 0 },
        R::CtxCreate {
            device: 0,
            flags: 4,
        },
        R::CtxDestroy { ctx: 0x1_0000_0001 },
        R::PrimaryCtxRetain { device: 0 },
        R::PrimaryCtxRelease { device: 0 },
        R::CtxSynchronize { ctx: 7 },
        R::CtxGetLimit { limit: 1 },
        R::CtxSetLimit {
            limit: 1,
            value: 1 << 20,
        },
        R::CtxGetStreamPriorityRange,
        R::MemAlloc { size: 1 << 21 },
        R::MemAllocPitch {
            width: 100,
            height: 3,
            element_size: 8,
        },
        R::MemFree {
            ptr: 0x7f00_0000_0000,
        },
        R::MemGetInfo,
        R::MemGetAddressRange {
            ptr: 0x7f00_0000_0010,
        },
        R::PointerGetAttribute {
            ptr: 0x7f00_0000_0010,
            attribute: 2,
        },
    ]
}

/// The host memory and VMM families' samples.
fn host_memory_and_vmm() -> Vec<Request> {
    use Request as R;
    vec![
        R::HostRegister {
            region: 3,
            size: 8192,
            flags: 1,
        },
        R::HostUnregister { region: 3 },
        R::MemAddressReserve {
            size: 1 << 21,
            alignment: 0,
            addr: 0,
            flags: 0,
        },
        R::MemAddressFree {
            ptr: 0x7f00_0000_0000,
            size: 1 << 21,
        },
        R::MemCreate {
            size: 1 << 21,
            device: 0,
            flags: 0,
        },
        R::MemRelease { handle: 9 },
        R::MemMap {
            ptr: 0x7f00_0000_0000,
            size: 1 << 21,
            offset: 0,
            handle: 9,
            flags: 0,
        },
        R::MemUnmap {
            ptr: 0x7f00_0000_0000,
            size: 1 << 21,
        },
        R::MemSetAccess {
            ptr: 0x7f00_0000_0000,
            size: 1 << 21,
            access: vec![AccessDesc {
                location_type: 1,
                location_id: 0,
                flags: 3,
            }],
        },
        R::MemGetAllocationGranularity {
            device: 0,
            option: 1,
        },
    ]
}

/// The copy, module, stream, event and admin families' samples.
fn from_copy() -> Vec<Request> {
    use Request as R;
    let span = HostSpan {
        region: 3,
        offset: 4096,
        len: 77,
    };
    vec![
        R::MemcpyHtoD {
            dst: 0x7f00_0000_0000,
            src: span,
        },
        R::MemcpyDtoH {
            dst: span,
            src: 0x7f00_0000_0000,
        },
        R::MemcpyDtoD {
            dst: 1,
            src: 2,
            len: 3,
        },
        R::Memset {
            dst: 1,
            pitch: 0,
            value: 0xAB,
            element_size: 1,
            width: 9,
            height: 1,
        },
        R::ModuleLoad { image: span },
        R::ModuleUnload { module: 5 },
        R::ModuleGetFunction {
            module: 5,
            name: "vec_add".into(),
        },
        R::ModuleGetGlobal {
            module: 5,
            name: "g".into(),
        },
        R::FuncGetAttribute {
            function: 6,
            attribute: 0,
        },
        R::FuncSetAttribute {
            function: 6,
            attribute: 8,
            value: 1024,
        },
        R::StreamCreate {
            flags: 1,
            priority: -1,
        },
        R::StreamDestroy { stream: 11 },
        R::StreamQuery { stream: 11 },
        R::StreamSynchronize { stream: 11 },
        R::EventCreate { flags: 2 },
        R::EventDestroy { event: 12 },
        R::EventQuery { event: 12 },
        R::EventSynchronize { event: 12 },
        R::EventElapsedTime { start: 12, end: 13 },
        R::Status,
        R::PolicyReload,
    ]
}

/// The postcard variant order of [`Request`]: frozen (a request is only ever appended).
const WIRE_ORDER: &[&str] = &[
    "Ping",
    "GetDeviceInfo",
    "CtxCreate",
    "CtxDestroy",
    "PrimaryCtxRetain",
    "PrimaryCtxRelease",
    "CtxSynchronize",
    "CtxGetLimit",
    "CtxSetLimit",
    "CtxGetStreamPriorityRange",
    "MemAlloc",
    "MemAllocPitch",
    "MemFree",
    "MemGetInfo",
    "MemGetAddressRange",
    "PointerGetAttribute",
    "HostRegister",
    "HostUnregister",
    "MemAddressReserve",
    "MemAddressFree",
    "MemCreate",
    "MemRelease",
    "MemMap",
    "MemUnmap",
    "MemSetAccess",
    "MemGetAllocationGranularity",
    "MemcpyHtoD",
    "MemcpyDtoH",
    "MemcpyDtoD",
    "Memset",
    "ModuleLoad",
    "ModuleUnload",
    "ModuleGetFunction",
    "ModuleGetGlobal",
    "FuncGetAttribute",
    "FuncSetAttribute",
    "StreamCreate",
    "StreamDestroy",
    "StreamQuery",
    "StreamSynchronize",
    "EventCreate",
    "EventDestroy",
    "EventQuery",
    "EventSynchronize",
    "EventElapsedTime",
    "Status",
];

#[test]
fn wire_order_is_frozen() {
    let declared: Vec<&str> = REQUESTS.iter().map(|r| r.name).collect();
    assert_eq!(
        &declared[..WIRE_ORDER.len()],
        WIRE_ORDER,
        "a request was inserted, removed or reordered: only appending keeps the wire format"
    );
    for (i, r) in one_of_each().iter().enumerate() {
        let bytes = crate::proto::encode(r).unwrap();
        // A postcard enum starts with its variant index (a varint: one byte below 128).
        assert_eq!(usize::from(bytes[0]), i, "{}", r.name());
        assert_eq!(crate::proto::decode::<Request>(&bytes).unwrap(), *r);
    }
    // Whole encodings of a few requests, as version 1 of the protocol has them.
    let golden: [(Request, &[u8]); 4] = [
        (Request::MemAlloc { size: 300 }, &[10, 0xAC, 0x02]),
        (Request::Status, &[45]),
        (
            Request::MemcpyHtoD {
                dst: 1,
                src: HostSpan {
                    region: 2,
                    offset: 3,
                    len: 4,
                },
            },
            &[26, 1, 2, 3, 4],
        ),
        (
            Request::Memset {
                dst: 1,
                pitch: 2,
                value: 3,
                element_size: 4,
                width: 5,
                height: 6,
            },
            &[29, 1, 2, 3, 4, 5, 6],
        ),
    ];
    for (r, bytes) in golden {
        assert_eq!(crate::proto::encode(&r).unwrap(), bytes, "{}", r.name());
    }
}

#[test]
fn every_declared_request_has_a_sample_and_routes_to_its_family() {
    let samples = one_of_each();
    assert_eq!(
        samples.len(),
        REQUESTS.len(),
        "one sample per declared request: add it"
    );
    for (r, info) in samples.into_iter().zip(REQUESTS) {
        assert_eq!(r.name(), info.name);
        assert_eq!(r.family().name(), info.family);
        assert_eq!(r.runs_inline(), info.inline);
        let family = r.family();
        let routed = match r.route() {
            Routed::Session(_) => Family::Session,
            Routed::Device(_) => Family::Device,
            Routed::Context(_) => Family::Context,
            Routed::Memory(_) => Family::Memory,
            Routed::Pointer(_) => Family::Pointer,
            Routed::HostMemory(_) => Family::HostMemory,
            Routed::Vmm(_) => Family::Vmm,
            Routed::Copy(_) => Family::Copy,
            Routed::Module(_) => Family::Module,
            Routed::Stream(_) => Family::Stream,
            Routed::Event(_) => Family::Event,
            Routed::Admin(_) => Family::Admin,
        };
        assert_eq!(routed, family, "{}", info.name);
    }
    assert_eq!(
        Request::MemAlloc { size: 5 }.route(),
        Routed::Memory(MemoryRequest::MemAlloc { size: 5 })
    );
    let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
    assert!(names.contains(&"host_memory") && names.contains(&"vmm"));
}

#[test]
fn protocol_md_has_the_declared_requests() {
    crate::doc_tables::check(
        "requests",
        &request_table(REQUESTS),
        "client/src/proto/request.rs",
    );
}
