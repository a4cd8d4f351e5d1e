//! Tests of the hidden export tables: MD2 and the integrity hash against known answers, table
//! lookup, context-local storage.

use super::integrity::md2;
use super::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn md2_matches_rfc_1319_test_suite() {
    assert_eq!(hex(&md2::digest(b"")), "8350e5a3e24c153df2275c9f80692773");
    assert_eq!(hex(&md2::digest(b"a")), "32ec01ec4a6dac72c0ab96fb34c0b5d1");
    assert_eq!(
        hex(&md2::digest(b"abc")),
        "da853b0d3f88d99b30283a69e6ded6bb"
    );
    assert_eq!(
        hex(&md2::digest(b"message digest")),
        "ab4f496bfb2a530b219ff33031fe06b0"
    );
    assert_eq!(
        hex(&md2::digest(b"abcdefghijklmnopqrstuvwxyz")),
        "4e8ddff3650292ab5a4108c3aa47940b"
    );
    let digits =
        b"12345678901234567890123456789012345678901234567890123456789012345678901234567890";
    assert_eq!(
        hex(&md2::digest(digits)),
        "d5976f79d83d3a0dc9806c3c66f3efd8"
    );
}

#[test]
fn md2_s_table_is_a_permutation() {
    let mut seen = [false; 256];
    for &b in &md2::S_FOR_TESTS {
        assert!(!seen[usize::from(b)]);
        seen[usize::from(b)] = true;
    }
}

#[test]
fn uuids_match_their_strings() {
    assert_eq!(
        uuid_string(&CUDART_INTERFACE),
        "6bd5fb6c-5bf4-e74a-8987-d93912fd9df9"
    );
    assert_eq!(
        CUDART_INTERFACE,
        [
            0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a, 0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd,
            0x9d, 0xf9
        ]
    );
    assert_eq!(
        uuid_string(&INTEGRITY_CHECK),
        "d4082055-bde6-704b-8d34-ba123c66e1f2"
    );
    assert_eq!(
        uuid_string(&uuid("f8cff951-2146-8b4e-b9e2-fb469e7c0dd9")),
        "f8cff951-2146-8b4e-b9e2-fb469e7c0dd9"
    );
}

#[test]
fn integrity_constants_and_hash() {
    let inputs = IntegrityInputs::default();
    assert_eq!(
        integrity_hash(12090, 1, &inputs),
        [0x3341181C03CB675C, 0x8ED383AA1F4CD1E8]
    );
    assert_eq!(
        integrity_hash(12091, 1, &inputs),
        [0x1841181C03CB675C, 0x8ED383AA1F4CD1E8]
    );
    // The keyed hash depends on every input.
    let base = IntegrityInputs {
        driver_version: 12090,
        process: 42,
        thread: 7,
        cudart_table: 0x1000,
        integrity_table: 0x2000,
        integrity_fn: 0x3000,
        devices: vec![([1; 16], 0, 1, 0)],
    };
    let h = integrity_hash(12092, 100, &base);
    assert_ne!(h, integrity_hash(12092, 101, &base));
    assert_ne!(h, integrity_hash(12093, 100, &base));
    let mut other = base.clone();
    other.devices[0].2 = 2;
    assert_ne!(h, integrity_hash(12092, 100, &other));
    assert_eq!(h, integrity_hash(12092, 100, &base.clone()));
}

#[test]
fn tables_have_their_sizes_in_slot_0() {
    let size = |p: *const c_void| {
        // SAFETY: every table has at least one slot.
        unsafe { p.cast::<usize>().read() }
    };
    assert_eq!(size(CUDART_INTERFACE_TABLE.as_ptr()), 13 * 8);
    assert_eq!(size(TOOLS_TLS_TABLE.as_ptr()), 4 * 8);
    assert_eq!(size(TOOLS_RUNTIME_CALLBACK_HOOKS_TABLE.as_ptr()), 7 * 8);
    assert_eq!(size(CONTEXT_CHECKS_TABLE.as_ptr()), 4 * 8);
    assert_eq!(size(INTEGRITY_CHECK_TABLE.as_ptr()), 3 * 8);
    assert_eq!(size(TOOLS_CONTEXT_TABLE.as_ptr()), 95 * 8);
}

/// libcudart 13.5 asks for TOOLS_CONTEXT; every slot is a trampoline failing with NOT_SUPPORTED.
#[test]
fn tools_context_is_handed_out_with_failing_slots() {
    assert_eq!(
        uuid_string(&TOOLS_CONTEXT),
        "21318c60-9714-3248-8ca6-41ff7324c8f2"
    );
    let mut table: *const c_void = std::ptr::null();
    // SAFETY: valid pointers.
    let found = unsafe { get_export_table(&mut table, &TOOLS_CONTEXT) };
    assert_eq!(found, SUCCESS);
    assert_eq!(table, TOOLS_CONTEXT_TABLE.as_ptr());
    let slots = table.cast::<usize>();
    for i in [1, 4, 39, 51, 94] {
        // SAFETY: the table has 95 slots; each slot past 0 is a 6-register trampoline.
        let r = unsafe {
            let f: extern "C" fn(usize, usize, usize, usize, usize, usize) -> CUresult =
                std::mem::transmute(slots.add(i).read());
            f(0, 0, 0, 0, 0, 0)
        };
        assert_eq!(r, NOT_SUPPORTED, "slot {i}");
    }
}

#[test]
fn unknown_uuids_and_null_arguments_are_refused() {
    let probe = uuid("f8cff951-2146-8b4e-b9e2-fb469e7c0dd9");
    let mut table: *const c_void = std::ptr::dangling();
    // SAFETY: valid pointers.
    let refused = unsafe { get_export_table(&mut table, &probe) };
    assert_eq!(refused, INVALID_VALUE);
    assert!(table.is_null());
    // SAFETY: NULL arguments are what is under test.
    unsafe {
        assert_eq!(
            get_export_table(std::ptr::null_mut(), &CUDART_INTERFACE),
            INVALID_VALUE
        );
        assert_eq!(
            get_export_table(&mut table, std::ptr::null()),
            INVALID_VALUE
        );
    }
    // SAFETY: valid pointers.
    let found = unsafe { get_export_table(&mut table, &CUDART_INTERFACE) };
    assert_eq!(found, SUCCESS);
    assert_eq!(table, CUDART_INTERFACE_TABLE.as_ptr());
}

#[test]
fn context_local_storage_put_get_delete() {
    // Explicit (fake) contexts: the storage is keyed by value and needs no driver for them.
    let ctx = 0x5150_0000usize as CUcontext;
    let other = 0x5150_0008usize as CUcontext;
    let key = 0x77usize as *mut c_void;
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: all calls: valid pointers; the contexts are only map keys.
    unsafe {
        assert_eq!(cls_get(&mut out, ctx, key), INVALID_HANDLE);
        assert_eq!(cls_put(ctx, key, 0x1234usize as *mut c_void, None), SUCCESS);
        assert_eq!(cls_get(&mut out, ctx, key), SUCCESS);
        assert_eq!(out as usize, 0x1234);
        assert_eq!(cls_get(&mut out, other, key), INVALID_HANDLE);
        assert_eq!(cls_put(ctx, key, 0x5678usize as *mut c_void, None), SUCCESS);
        assert_eq!(cls_get(&mut out, ctx, key), SUCCESS);
        assert_eq!(out as usize, 0x5678);
        assert_eq!(cls_delete(ctx, key), SUCCESS);
        assert_eq!(cls_get(&mut out, ctx, key), INVALID_HANDLE);
        assert_eq!(cls_delete(ctx, key), INVALID_HANDLE);
        assert_eq!(cls_get(std::ptr::null_mut(), ctx, key), INVALID_VALUE);
    }
}

static DESTROYED: Mutex<Vec<(usize, usize, usize)>> = Mutex::new(Vec::new());

unsafe extern "C" fn record(ctx: CUcontext, key: *mut c_void, value: *mut c_void) {
    DESTROYED
        .lock()
        .unwrap()
        .push((ctx as usize, key as usize, value as usize));
}

#[test]
fn destroying_a_context_runs_its_destructors() {
    let ctx = 0x6160_0000usize as CUcontext;
    let other = 0x6160_0008usize as CUcontext;
    let (k1, k2) = (
        std::ptr::without_provenance_mut(1),
        std::ptr::without_provenance_mut(2),
    );
    // SAFETY: all calls: valid pointers; the contexts are only map keys.
    unsafe {
        assert_eq!(
            cls_put(ctx, k1, 10usize as *mut c_void, Some(record)),
            SUCCESS
        );
        assert_eq!(cls_put(ctx, k2, 20usize as *mut c_void, None), SUCCESS);
        assert_eq!(
            cls_put(other, k1, 30usize as *mut c_void, Some(record)),
            SUCCESS
        );
    }
    context_destroyed(ctx);
    assert_eq!(*DESTROYED.lock().unwrap(), vec![(ctx as usize, 1, 10)]);
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: valid pointers.
    unsafe {
        assert_eq!(cls_get(&mut out, ctx, k2), INVALID_HANDLE);
        assert_eq!(cls_get(&mut out, other, k1), SUCCESS);
    }
    assert_eq!(out as usize, 30);
    context_destroyed(other);
    assert_eq!(DESTROYED.lock().unwrap().len(), 2);
}
