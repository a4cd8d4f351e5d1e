//! Handshake messages: `Hello` (tenant or admin → broker), `Welcome` / `Rejected` (broker →).
//!
//! Field order of [`Hello`] (`protocol_version` first) and the position of `Rejected` as the first
//! [`BrokerMessage`](super::BrokerMessage) variant are frozen across protocol versions, so a
//! broker can always read a peer's version and answer with a readable rejection.

use serde::{Deserialize, Serialize};

use super::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::shm::ShmLayout;

/// What a connecting process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionKind {
    /// A CUDA process (through the shim): gets a shared-memory region.
    Tenant,
    /// An admin tool: socket requests only (`Status`), no region.
    Admin,
}

/// First message of every session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender. Must stay the first field.
    pub protocol_version: u32,
    /// Tenant name (for policy lookup and logs), e.g. from `GPUSHARE_TENANT`.
    pub tenant_name: String,
    /// Sender's process id as it sees it (the broker trusts `SO_PEERCRED` instead; this is for
    /// logs across pid namespaces).
    pub pid: u32,
    /// Tenant or admin.
    pub kind: SessionKind,
    /// Sender's crate version, for logs.
    pub client_version: String,
}

impl Hello {
    /// A tenant hello for this process.
    pub fn tenant(name: impl Into<String>) -> Hello {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            tenant_name: name.into(),
            pid: std::process::id(),
            kind: SessionKind::Tenant,
            client_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// An admin hello for this process.
    pub fn admin(name: impl Into<String>) -> Hello {
        Hello {
            kind: SessionKind::Admin,
            ..Hello::tenant(name)
        }
    }
}

/// Checks a peer's protocol version; the error is a sentence for the `Rejected` reason and logs.
pub fn check_version(peer: u32) -> Result<(), String> {
    if (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&peer) {
        Ok(())
    } else {
        Err(format!(
            "protocol version mismatch: client speaks version {peer}, broker speaks \
             {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}; use a shim built from the same \
             gpushare release as the broker"
        ))
    }
}

/// A device as the tenant sees it, fetched once at the handshake (and on `GetDeviceInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Ordinal as the tenant numbers devices.
    pub ordinal: i32,
    /// `cuDeviceGetName`.
    pub name: String,
    /// `cuDeviceGetUuid`.
    pub uuid: [u8; 16],
    /// `cuDeviceTotalMem` (the tenant's view, i.e. its quota when one is set).
    pub total_mem: u64,
    /// Compute capability major.
    pub cc_major: i32,
    /// Compute capability minor.
    pub cc_minor: i32,
    /// `cuDeviceGetPCIBusId`.
    pub pci_bus_id: String,
    /// `cuDeviceGetAttribute` values indexed by `CUdevice_attribute`; entries past the end, and
    /// entries holding [`DeviceInfo::UNSUPPORTED`], are attributes the driver rejects.
    pub attributes: Vec<i32>,
}

impl DeviceInfo {
    /// Marks an attribute the driver does not support.
    pub const UNSUPPORTED: i32 = i32::MIN;

    /// The value of attribute `attr`, if the driver supports it.
    pub fn attribute(&self, attr: i32) -> Option<i32> {
        usize::try_from(attr)
            .ok()
            .and_then(|i| self.attributes.get(i).copied())
            .filter(|&v| v != DeviceInfo::UNSUPPORTED)
    }
}

/// The broker accepted the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Version the broker will speak (the client's, when accepted).
    pub protocol_version: u32,
    /// Session id (unique for the broker's lifetime; in logs and `Status`).
    pub session_id: u64,
    /// Layout of the shared-memory region whose memfd rides with this frame (tenants only).
    pub shm: Option<ShmLayout>,
    /// `cuDriverGetVersion` of the broker's driver.
    pub driver_version: i32,
    /// Devices visible to the tenant.
    pub devices: Vec<DeviceInfo>,
    /// Broker build version, for logs.
    pub broker_version: String,
}
