//! A tenant's virtual memory management through a broker on the CPU device: granularity,
//! physical allocations, reservations, mappings and access, and module globals.

mod common;

use common::*;
use gpushare_client::code;
use gpushare_client::proto::{Reply, Request};
use gpushare_client::Client;

#[test]
fn tenant_vmm_and_module_globals() {
    let b = BrokerProc::start();
    let c = b.tenant("vmm");
    let (size, va, h) = reserve_and_create(&c);
    // Mapping outside the reservation, or before mapping, copies fail.
    assert_eq!(
        call(
            &c,
            Request::MemMap {
                ptr: va + 4 * size,
                size,
                offset: 0,
                handle: h,
                flags: 0
            }
        )
        .code,
        code::ERROR_INVALID_VALUE
    );
    assert_eq!(
        c.copy_to_device(va, &[1, 2, 3, 4]).unwrap(),
        code::ERROR_INVALID_VALUE
    );
    ok(
        &c,
        Request::MemMap {
            ptr: va,
            size,
            offset: 0,
            handle: h,
            flags: 0,
        },
    );
    ok(
        &c,
        Request::MemSetAccess {
            ptr: va,
            size,
            access: vec![gpushare_client::proto::AccessDesc {
                location_type: 1,
                location_id: 0,
                flags: 3,
            }],
        },
    );
    let v = data(1000, 3);
    upload_f32(&c, va + 64, &v);
    assert_eq!(download_f32(&c, va + 64, 1000), v);
    assert_eq!(b.status().tenants[0].memory_bytes, size);
    assert_eq!(
        call(
            &c,
            Request::MemAddressFree {
                ptr: va,
                size: 2 * size
            }
        )
        .code,
        code::ERROR_INVALID_VALUE,
        "still mapped"
    );
    ok(&c, Request::MemUnmap { ptr: va, size });
    ok(&c, Request::MemRelease { handle: h });
    ok(
        &c,
        Request::MemAddressFree {
            ptr: va,
            size: 2 * size,
        },
    );
    assert_eq!(b.used_mem(), 0);

    module_globals_are_the_tenants_memory(&c);
}

/// The granularity `g`; a reservation of `4 g` and a physical allocation of `2 g`: (`2 g`, the
/// reservation's address, the allocation's handle).
fn reserve_and_create(c: &Client) -> (u64, u64, u64) {
    let g = match ok(
        c,
        Request::MemGetAllocationGranularity {
            device: 0,
            option: 0,
        },
    ) {
        Reply::Value(v) => v,
        other => panic!("{other:?}"),
    };
    let size = 2 * g;
    let va = match ok(
        c,
        Request::MemAddressReserve {
            size: 2 * size,
            alignment: 0,
            addr: 0,
            flags: 0,
        },
    ) {
        Reply::DevicePtr { ptr } => ptr,
        other => panic!("{other:?}"),
    };
    let h = match ok(
        c,
        Request::MemCreate {
            size,
            device: 0,
            flags: 0,
        },
    ) {
        Reply::MemHandle { handle } => handle,
        other => panic!("{other:?}"),
    };
    (size, va, h)
}

/// Module globals are the tenant's memory: readable while the module is loaded, gone after.
fn module_globals_are_the_tenants_memory(c: &Client) {
    let m = load_module(c, "device_global");
    let (ptr, gsize) = match ok(
        c,
        Request::ModuleGetGlobal {
            module: m,
            name: "dev_counter".into(),
        },
    ) {
        Reply::Global { ptr, size } => (ptr, size),
        other => panic!("{other:?}"),
    };
    assert_eq!(gsize, 4);
    let mut w = [0u8; 4];
    assert_eq!(c.copy_from_device(&mut w, ptr).unwrap(), code::SUCCESS);
    assert_eq!(i32::from_le_bytes(w), 7);
    ok(c, Request::ModuleUnload { module: m });
    assert_eq!(
        c.copy_from_device(&mut w, ptr).unwrap(),
        code::ERROR_INVALID_VALUE
    );
}
