//! Hints about managed memory (`cuMemAdvise`, `cuMemPrefetchAsync`, their `_v2`
//! location-based forms, the default in CUDA 13): the argument checks both libraries share.
//!
//! Rules (CUDA driver API, "Unified Addressing"): the range must lie in managed memory
//! (`INVALID_VALUE` otherwise) and not be empty; the advice is one of `CU_MEM_ADVISE_*` (1–6);
//! a location is a device (its ordinal must exist: `INVALID_DEVICE`) or the host
//! (`CU_MEM_LOCATION_TYPE_HOST`, `_HOST_NUMA`, `_HOST_NUMA_CURRENT`); the read-mostly advice
//! ignores the location. The v1 forms name a device ordinal, `CU_DEVICE_CPU` (-1) for the host.
//!
//! Both libraries keep managed memory where host and device share it, so a valid hint changes
//! nothing: it is accepted (and a prefetch is stream-ordered, so it takes part in capture).

use super::debug;
use crate::cuda_h::{CUmemLocation, LOCATION_DEVICE, LOCATION_HOST_TYPES};
use crate::error::{CuError, CuResult};

/// `CU_DEVICE_CPU`: the host, in the v1 forms.
pub const DEVICE_CPU: i32 = -1;
/// `CU_MEM_LOCATION_TYPE_HOST`
const LOCATION_HOST: i32 = 2;
/// `CU_MEM_ADVISE_SET_READ_MOSTLY` and `_UNSET_READ_MOSTLY`: no location.
const READ_MOSTLY: [i32; 2] = [1, 2];

/// The location a v1 device argument names.
pub fn v1_location(device: i32) -> CUmemLocation {
    match device {
        DEVICE_CPU => CUmemLocation {
            type_: LOCATION_HOST,
            id: 0,
        },
        dev => CUmemLocation {
            type_: LOCATION_DEVICE,
            id: dev,
        },
    }
}

/// Checks a location: a device among `devices`, or the host.
fn location(what: &str, loc: CUmemLocation, devices: i32) -> CuResult {
    match loc.type_ {
        LOCATION_DEVICE if (0..devices).contains(&loc.id) => Ok(()),
        LOCATION_DEVICE => {
            debug(format_args!("{what}: device {} does not exist", loc.id));
            Err(CuError::INVALID_DEVICE)
        }
        t if LOCATION_HOST_TYPES.contains(&t) => Ok(()),
        t => {
            debug(format_args!("{what}: location type {t}"));
            Err(CuError::INVALID_VALUE)
        }
    }
}

/// `cuMemAdvise_v2`'s arguments, `managed` saying whether the range lies in managed memory.
pub fn advise(
    count: usize,
    advice: i32,
    loc: CUmemLocation,
    devices: i32,
    managed: bool,
) -> CuResult {
    range("cuMemAdvise", count, managed)?;
    if !(1..=6).contains(&advice) {
        debug(format_args!("cuMemAdvise: advice {advice}"));
        return Err(CuError::INVALID_VALUE);
    }
    if READ_MOSTLY.contains(&advice) {
        return Ok(());
    }
    location("cuMemAdvise", loc, devices)
}

/// `cuMemPrefetchAsync_v2`'s arguments.
pub fn prefetch(count: usize, loc: CUmemLocation, devices: i32, managed: bool) -> CuResult {
    range("cuMemPrefetchAsync", count, managed)?;
    location("cuMemPrefetchAsync", loc, devices)
}

fn range(what: &str, count: usize, managed: bool) -> CuResult {
    if count == 0 || !managed {
        debug(format_args!(
            "{what}: {count} bytes, managed memory: {managed}"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_checked_as_cuda_does() {
        let dev0 = v1_location(0);
        let host = v1_location(DEVICE_CPU);
        assert_eq!(host.type_, LOCATION_HOST);
        assert_eq!(advise(64, 3, dev0, 1, true), Ok(()));
        assert_eq!(advise(64, 3, host, 1, true), Ok(()));
        assert_eq!(
            advise(64, 3, v1_location(1), 1, true),
            Err(CuError::INVALID_DEVICE)
        );
        assert_eq!(
            advise(64, 1, v1_location(7), 1, true),
            Ok(()),
            "read-mostly: no location"
        );
        assert_eq!(advise(64, 7, dev0, 1, true), Err(CuError::INVALID_VALUE));
        assert_eq!(advise(64, 3, dev0, 1, false), Err(CuError::INVALID_VALUE));
        assert_eq!(advise(0, 3, dev0, 1, true), Err(CuError::INVALID_VALUE));
        let nowhere = CUmemLocation { type_: 0, id: 0 };
        assert_eq!(prefetch(64, nowhere, 1, true), Err(CuError::INVALID_VALUE));
        assert_eq!(prefetch(64, host, 1, true), Ok(()));
    }
}
