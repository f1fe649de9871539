//! A [`Snapshot`]: every resource of one configuration version.
//!
//! A snapshot is immutable once built; reload builds a new one and swaps it in (see
//! [`crate::watch`]). Its version is a hash of the resources' content, so a change that only
//! touches comments or formatting yields the same version.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::model::{
    AnyResource, AuthorizationPolicy, DestinationRule, PeerAuthentication, Resource, ServiceEntry,
    Sidecar, VirtualService, WorkloadEntry,
};

/// All resources of one configuration version, in load order (files sorted by path, then
/// document order), with a content-hash version and the time it was loaded.
#[derive(Clone, Debug)]
pub struct Snapshot {
    version: String,
    loaded_at: SystemTime,
    resources: Vec<AnyResource>,
}

macro_rules! typed_view {
    ($fn:ident, $variant:ident, $ty:ty, $doc:literal) => {
        #[doc = $doc]
        pub fn $fn(&self) -> impl Iterator<Item = &Resource<$ty>> + '_ {
            self.resources.iter().filter_map(|r| match r {
                AnyResource::$variant(r) => Some(&**r),
                _ => None,
            })
        }
    };
}

impl Snapshot {
    /// A snapshot of `resources`, versioned by their content and stamped with the current time.
    pub fn new(resources: Vec<AnyResource>) -> Self {
        let version = content_version(&resources);
        Self {
            version,
            loaded_at: SystemTime::now(),
            resources,
        }
    }

    /// A snapshot with no resources.
    pub fn empty() -> Self {
        Self::new(Vec::new())
    }

    /// The content-hash version (16 hex digits).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// When the snapshot was built.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// Every resource, in load order.
    pub fn resources(&self) -> &[AnyResource] {
        &self.resources
    }

    /// Whether the snapshot has no resources.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    typed_view!(
        virtual_services,
        VirtualService,
        VirtualService,
        "The VirtualServices."
    );
    typed_view!(
        destination_rules,
        DestinationRule,
        DestinationRule,
        "The DestinationRules."
    );
    typed_view!(
        service_entries,
        ServiceEntry,
        ServiceEntry,
        "The ServiceEntries."
    );
    typed_view!(
        workload_entries,
        WorkloadEntry,
        WorkloadEntry,
        "The WorkloadEntries."
    );
    typed_view!(sidecars, Sidecar, Sidecar, "The Sidecars.");
    typed_view!(
        peer_authentications,
        PeerAuthentication,
        PeerAuthentication,
        "The PeerAuthentications."
    );
    typed_view!(
        authorization_policies,
        AuthorizationPolicy,
        AuthorizationPolicy,
        "The AuthorizationPolicies."
    );
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::empty()
    }
}

/// FNV-1a over each resource's canonical JSON (type, metadata, spec), streamed straight into
/// the hash (no intermediate JSON value or buffer): stable across runs and platforms, blind to
/// comments and formatting.
fn content_version(resources: &[AnyResource]) -> String {
    let mut hash = Fnv1a(0xcbf2_9ce4_8422_2325);
    for r in resources {
        // Writing into the hasher cannot fail, and every model type serializes.
        let _ = serde_json::to_writer(&mut hash, r);
        hash.feed(&[0xff]);
    }
    let mut out = String::with_capacity(16);
    let _ = write!(out, "{:016x}", hash.0);
    out
}

struct Fnv1a(u64);

impl Fnv1a {
    fn feed(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(
    clippy::field_reassign_with_default,
    reason = "built the way users outside the crate must build #[non_exhaustive] types"
)]
mod tests {
    use super::*;
    use crate::model::{Kind, ObjectMeta};

    fn se(name: &str) -> AnyResource {
        let mut spec = ServiceEntry::default();
        spec.hosts = vec![format!("{name}.example.com")];
        AnyResource::ServiceEntry(Box::new(Resource::new(
            Kind::ServiceEntry,
            ObjectMeta::new(name, "default"),
            spec,
        )))
    }

    #[test]
    fn version_follows_content_only() {
        let a = Snapshot::new(vec![se("a"), se("b")]);
        let b = Snapshot::new(vec![se("a"), se("b")]);
        let c = Snapshot::new(vec![se("a"), se("c")]);
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
        assert_eq!(a.version().len(), 16);
        assert_eq!(a.service_entries().count(), 2);
        assert_eq!(a.virtual_services().count(), 0);
    }
}
